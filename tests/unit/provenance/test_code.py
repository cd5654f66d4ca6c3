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
