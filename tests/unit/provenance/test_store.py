"""The object store on a local directory: content addressing, write-once, integrity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tycho.provenance import hashing, store as store_mod


@pytest.fixture
def store(tmp_path: Path) -> store_mod.Store:
    return store_mod.Store(f"file://{tmp_path / 'store'}")


def test_put_file_stores_under_the_sha256(store: store_mod.Store, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello")
    digest = store.put_file(src)
    assert digest == hashing.sha256_bytes(b"hello")
    assert (Path(store.root) / "objects" / "sha256" / digest).read_bytes() == b"hello"
    assert store.verify(digest)


def test_no_temporary_files_are_left_behind(store: store_mod.Store, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 10)
    store.put_file(src)
    store.put_file(src)
    assert [p.name for p in (Path(store.root) / "objects" / "sha256").iterdir()] == [hashing.sha256_bytes(b"x" * 10)]


def test_verify_fails_for_a_corrupted_blob(store: store_mod.Store) -> None:
    digest = store.put_bytes(b"model weights")
    (Path(store.root) / store.object_rel(digest)).write_bytes(b"model weightz")
    assert not store.verify(digest)
    with pytest.raises(store_mod.IntegrityError):
        store.get_bytes(digest)


def test_records_are_write_once(store: store_mod.Store) -> None:
    store.write_json_once("records/r1/train.json", {"a": 1})
    with pytest.raises(store_mod.WriteOnceViolation, match="write-once"):
        store.write_json_once("records/r1/train.json", {"a": 2})
    assert store.read_json("records/r1/train.json") == {"a": 1}


def test_relative_file_urls_resolve_against_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert store_mod.resolve_url("file://.tycho/store") == f"file://{tmp_path}/.tycho/store"


def test_hashing_matches_hashlib_on_a_multi_chunk_file(tmp_path: Path) -> None:
    data = os.urandom(hashing.CHUNK * 2 + 17)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert hashing.sha256_file(path) == hashing.sha256_bytes(data)
