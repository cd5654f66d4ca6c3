"""Code identity: a content digest of the stage code directory, a deterministic archive
of it (stored content-addressed so ``tycho reproduce`` can run the exact code again), and
the git commit when the directory is in a git checkout.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from tycho.provenance import hashing

IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".git", ".mypy_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo")


def files(root: Path) -> list[Path]:
    """Files that make up the code, sorted, relative to root."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        for name in sorted(filenames):
            if not name.endswith(IGNORED_SUFFIXES):
                found.append(Path(dirpath, name).relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def archive(root: Path) -> bytes:
    """A tar of the code with fixed metadata: the same bytes for the same files anywhere."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in files(root):
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(rel.as_posix())
            info.size = len(data)
            info.mode = 0o755 if os.access(root / rel, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(root: Path) -> str:
    """The code digest: sha256 of the deterministic archive."""
    return hashing.sha256_bytes(archive(root))


def extract(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(target, filter="data")


def git_commit(root: Path) -> tuple[str, bool] | None:
    """The checkout's commit and whether the code directory has uncommitted changes (one
    ``git status``: its v2 header names the commit, every other line is a change)."""
    try:
        lines = subprocess.run(["git", "status", "--porcelain=v2", "--branch", "--", "."], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if commit == "(initial)":  # no commit yet
        return None
    return commit, any(not line.startswith("#") for line in lines)
