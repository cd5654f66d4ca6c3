"""Directory outputs: a folder stored as a tree of file digests.

A tree is a small JSON document (``Tree``) listing every file's relative path, sha256,
size and executable bit, sorted by path; it is stored content-addressed like any blob,
and its digest is the output's digest. The same files give the same tree bytes on any
machine, so a directory output (a SavedModel, a folder of shards) is cached, recorded
and compared exactly like a file output. Files are stored as ordinary objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic

from tycho.provenance import hashing, store as store_mod

FORMAT = "tycho.dev/tree/v1"
MEDIA_TYPE = "application/vnd.tycho.tree+json"


class Entry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(defer_build=True)  # only pipelines with directory outputs use trees

    path: str
    sha256: str
    size: int
    executable: bool = False


class Tree(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(defer_build=True)

    format: str = FORMAT
    entries: list[Entry]

    def encode(self) -> bytes:
        return (self.model_dump_json() + "\n").encode()


def scan(root: Path) -> Tree:
    """The tree of a folder: regular files only, symlinks refused (they could point anywhere)."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_symlink() or not path.is_file():
                raise ValueError(f"{path.relative_to(root)} in directory output {root.name} is not a regular file")
            entries.append(Entry(path=path.relative_to(root).as_posix(), sha256=hashing.sha256_file(path),
                                 size=path.stat().st_size, executable=os.access(path, os.X_OK)))
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            if Path(dirpath, name).is_symlink():
                raise ValueError(f"{Path(dirpath, name).relative_to(root)} in directory output {root.name} "
                                 "is a symlink")
    entries.sort(key=lambda e: e.path)
    return Tree(entries=entries)


def put(store: store_mod.Store, root: Path) -> str:
    """Store every file of a folder and its tree; returns the tree's digest."""
    tree = scan(root)
    for entry in tree.entries:
        store.put_file(root / entry.path, entry.sha256)
    return store.put_bytes(tree.encode())


def load(store: store_mod.Store, digest: str) -> Tree:
    return Tree.model_validate_json(store.get_bytes(digest))


def get(store: store_mod.Store, digest: str, target: Path) -> None:
    """Recreate a stored folder at ``target`` (every file checked against its digest)."""
    tree = load(store, digest)
    target.mkdir(parents=True, exist_ok=True)
    for entry in tree.entries:
        dest = (target / entry.path).resolve()
        if not dest.is_relative_to(target.resolve()):
            raise store_mod.IntegrityError(f"tree {digest} names a path outside its folder: {entry.path!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(entry.sha256, dest)
        if entry.executable:
            dest.chmod(0o755)


def verify(store: store_mod.Store, digest: str) -> bool:
    """The tree and every file it lists exist and hash to their digests."""
    if not store.verify(digest):
        return False
    try:
        tree = load(store, digest)
    except (pydantic.ValidationError, ValueError):
        return False
    return all(store.verify(e.sha256) for e in tree.entries)
