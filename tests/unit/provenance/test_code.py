"""Code identity: deterministic archive and digest."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tycho.provenance import code


def make(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"junk")


def test_digest_ignores_mtimes_and_caches(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make(a)
    time.sleep(0.01)
    make(b)
    os.utime(b / "train.py", (0, 0))
    (b / "__pycache__" / "other.pyc").write_bytes(b"more junk")
    assert code.digest(a) == code.digest(b)


def test_digest_changes_with_content_and_names(tmp_path: Path) -> None:
    make(tmp_path)
    before = code.digest(tmp_path)
    (tmp_path / "train.py").write_text("print('train!')\n")
    changed = code.digest(tmp_path)
    (tmp_path / "train.py").rename(tmp_path / "fit.py")
    assert len({before, changed, code.digest(tmp_path)}) == 3


def test_archive_round_trips(tmp_path: Path) -> None:
    make(tmp_path / "src")
    code.extract(code.archive(tmp_path / "src"), tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "util.py").read_text() == "X = 1\n"
    assert code.digest(tmp_path / "out") == code.digest(tmp_path / "src")


def test_git_commit_and_dirty_state_of_the_code_folder_only(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    make(tmp_path / "code")
    (tmp_path / "other.txt").write_text("x\n")
    assert code.git_commit(tmp_path / "code") is None  # no commit yet
    git("add", "code", "other.txt")
    git("commit", "-q", "-m", "c")
    head = git("rev-parse", "HEAD")
    (tmp_path / "other.txt").write_text("changed outside the code folder\n")
    assert code.git_commit(tmp_path / "code") == (head, False)
    (tmp_path / "code" / "new.py").write_text("")
    assert code.git_commit(tmp_path / "code") == (head, True)
    (tmp_path / "code" / "new.py").unlink()
    (tmp_path / "code" / "train.py").write_text("edited\n")
    assert code.git_commit(tmp_path / "code") == (head, True)
    assert code.git_commit(tmp_path.parent / "not-a-checkout-anywhere") is None
