"""The object store on a local directory: content addressing, write-once, integrity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tycho.provenance import hashing, layout, store as store_mod, tree


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
    path = store.local_path(layout.object_rel(digest))
    assert not path.stat().st_mode & 0o222  # stored objects are read-only
    path.chmod(0o644)
    path.write_bytes(b"model weightz")
    assert not store.verify(digest)
    with pytest.raises(store_mod.IntegrityError):
        store.get_bytes(digest)


def test_records_are_write_once(store: store_mod.Store) -> None:
    store.write_bytes_once("records/r1/train.json", b'{"a": 1}')
    with pytest.raises(store_mod.WriteOnceViolation, match="write-once"):
        store.write_bytes_once("records/r1/train.json", b'{"a": 2}')
    assert store.read_json("records/r1/train.json") == {"a": 1}


def test_relative_file_urls_resolve_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert layout.resolve_url("file://.tycho/store") == f"file://{tmp_path}/.tycho/store"


def test_hashing_matches_hashlib_on_a_multi_chunk_file(tmp_path: Path) -> None:
    data = os.urandom(hashing.CHUNK * 2 + 17)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert hashing.sha256_file(path) == hashing.sha256_bytes(data)


def test_layout_reads_absolute_uris_of_older_records_relative_to_any_store() -> None:
    assert layout.rel("s3://bucket/deep/prefix/records/r1/train.json") == "records/r1/train.json"
    assert layout.rel("file:///home/me/.tycho/store/objects/sha256/" + "a" * 64) == "objects/sha256/" + "a" * 64
    assert layout.rel("records/r1/train.json") == "records/r1/train.json"
    assert layout.digest_of("objects/sha256/" + "b" * 64) == "b" * 64
    with pytest.raises(ValueError, match="names nothing in a Tycho store"):
        layout.rel("s3://bucket/elsewhere/file.txt")


def test_a_folder_is_stored_as_a_tree_with_the_same_digest_anywhere(store: store_mod.Store, tmp_path: Path) -> None:
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "variables").mkdir(parents=True)
        (root / "saved_model.pb").write_bytes(b"graph")
        (root / "variables" / "data-0").write_bytes(b"weights")
    first, second = tree.put(store, tmp_path / "a"), tree.put(store, tmp_path / "b")
    assert first == second and tree.verify(store, first)
    assert [e.path for e in tree.load(store, first).entries] == ["saved_model.pb", "variables/data-0"]
    tree.get(store, first, tmp_path / "copy")
    assert (tmp_path / "copy" / "variables" / "data-0").read_bytes() == b"weights"
    weights = store.local_path(layout.object_rel(hashing.sha256_bytes(b"weights")))
    weights.chmod(0o644)
    weights.write_bytes(b"weightz")
    assert not tree.verify(store, first)


def test_a_folder_with_a_symlink_is_refused(store: store_mod.Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to("/etc/passwd")
    with pytest.raises(ValueError, match="not a regular file"):
        tree.put(store, tmp_path / "out")


def test_writing_an_object_whose_stored_copy_is_corrupt_replaces_it(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights" * 100)
    digest = store.put_file(source)
    stored = store.local_path(f"objects/sha256/{digest}")
    stored.chmod(0o644)
    stored.write_bytes(b"WEIGHTS" * 100)  # same size, other bytes
    assert not store.verify(digest)
    assert store.put_file(source) == digest and store.verify(digest)
    assert store.put_bytes(b"small") == store.put_bytes(b"small")
    small = store.local_path(f"objects/sha256/{store.put_bytes(b'small')}")
    small.chmod(0o644)
    small.write_bytes(b"smalL")
    store.put_bytes(b"small")
    assert small.read_bytes() == b"small"
