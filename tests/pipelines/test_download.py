"""The download stage: bundled digits, and the MNIST / CIFAR-10 downloaders on crafted local files.

The crafted files use the real formats (gzip'd IDX, a gzip tarball of pickled batches)
with a handful of samples and are served through file:// URLs, so the whole fetch,
sha256 check and parse path runs without network.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from .digits_harness import StageRunner, sha256_file

Array = np.ndarray[Any, Any]

MNIST_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_NAME = "cifar-10-python.tar.gz"
CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def idx(array: Array) -> bytes:
    """IDX encoding of an unsigned-byte array (type code 0x08)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(
    directory: Path, train_x: Array, train_y: Array, test_x: Array, test_y: Array
) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    blobs = {
        "train-images-idx3-ubyte.gz": idx(train_x),
        "train-labels-idx1-ubyte.gz": idx(train_y),
        "t10k-images-idx3-ubyte.gz": idx(test_x),
        "t10k-labels-idx1-ubyte.gz": idx(test_y),
    }
    for name, blob in blobs.items():
        (directory / name).write_bytes(gzip.compress(blob, mtime=0))
    return {name: sha256_file(directory / name) for name in blobs}


def small_mnist(rng: np.random.Generator) -> tuple[Array, Array, Array, Array]:
    train_x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    train_x[4] = train_x[1]  # an exact duplicate: it must get the same id as sample 1
    train_y = np.array([3, 1, 4, 1, 1], dtype=np.uint8)
    test_y = np.array([9, 2, 6], dtype=np.uint8)
    return train_x, train_y, test_x, test_y


def cifar_batch(data: Array, labels: list[int], label: bytes) -> bytes:
    # The published batches are Python 2 pickles with bytes keys; protocol 2 is what they use.
    batch = {b"batch_label": label, b"labels": labels, b"data": data, b"filenames": [b"x.png"] * len(labels)}
    return pickle.dumps(batch, protocol=2)


def write_cifar(path: Path, batches: dict[str, tuple[Array, list[int]]], meta: bytes | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if meta is None:
        meta = pickle.dumps({b"label_names": [n.encode() for n in CIFAR_LABELS], b"num_vis": 3072}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        members = {"batches.meta": meta}
        members.update({name: cifar_batch(data, labels, name.encode()) for name, (data, labels) in batches.items()})
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return sha256_file(path)


def cifar_batches(rng: np.random.Generator, per_batch: int = 2) -> dict[str, tuple[Array, list[int]]]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {
        name: (
            rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            [int(v) for v in rng.integers(0, 10, per_batch)],
        )
        for name in names
    }


def test_sklearn_digits_dataset_is_complete_and_content_addressed(digits_dataset: Path) -> None:
    from sklearn.datasets import load_digits

    reference = load_digits()
    with np.load(digits_dataset, allow_pickle=False) as data:
        x, y, ids = data["x"], data["y"], data["ids"]
        assert x.shape == (1797, 8, 8, 1) and x.dtype == np.uint8
        np.testing.assert_array_equal(x[..., 0], reference.images.astype(np.uint8))
        np.testing.assert_array_equal(y, reference.target)
        assert float(data["scale"]) == x.max() == 16
        assert list(data["class_names"]) == [str(i) for i in range(10)]
    # sklearn's digits contain no exact duplicates, so content ids are all distinct.
    assert len(set(ids.tolist())) == len(ids)
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids[:20])


def test_digits_download_is_byte_identical_across_processes(stage: StageRunner, digits_dataset: Path) -> None:
    again = stage("download", {"source": "sklearn-digits"}).check()
    assert again.digest("dataset") == sha256_file(digits_dataset)
    assert again.headline["samples"] == 1797


def test_mnist_from_local_mirror(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train_x, train_y, test_x, test_y = small_mnist(rng)
    digests = write_mnist(tmp_path / "mirror", train_x, train_y, test_x, test_y)

    run = stage("download", {"source": "mnist", "mirror": (tmp_path / "mirror").as_uri(), "sha256": digests}).check()

    with np.load(run.output("dataset"), allow_pickle=False) as data:
        np.testing.assert_array_equal(data["x"][..., 0], np.concatenate([train_x, test_x]))
        np.testing.assert_array_equal(data["y"], np.concatenate([train_y, test_y]))
        assert float(data["scale"]) == 255.0
        ids = data["ids"].tolist()
    assert ids[4] == ids[1], "identical samples must share their content id"
    assert len(set(ids)) == len(ids) - 1
    assert run.headline["samples"] == 8 and run.headline["height"] == 28


def test_content_ids_do_not_depend_on_file_order(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train_x, train_y, test_x, test_y = small_mnist(rng)
    order = np.array([2, 0, 4, 3, 1])
    forward = write_mnist(tmp_path / "a", train_x, train_y, test_x, test_y)
    shuffled = write_mnist(tmp_path / "b", train_x[order], train_y[order], test_x, test_y)
    runs = [
        stage("download", {"source": "mnist", "mirror": (tmp_path / d).as_uri(), "sha256": s}).check()
        for d, s in (("a", forward), ("b", shuffled))
    ]
    with np.load(runs[0].output("dataset")) as a, np.load(runs[1].output("dataset")) as b:
        assert sorted(a["ids"].tolist()) == sorted(b["ids"].tolist())
        np.testing.assert_array_equal(b["ids"][:5], a["ids"][:5][order])


def test_mnist_checksum_mismatch_names_file_and_digests(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    digests = write_mnist(tmp_path / "mirror", *small_mnist(rng))

    # No sha256 override: the crafted files cannot match the published digests.
    run = stage("download", {"source": "mnist", "mirror": (tmp_path / "mirror").as_uri()})

    assert run.returncode == 1
    assert not run.output("dataset").exists()
    first = "train-images-idx3-ubyte.gz"
    published = "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    assert f"sha256 mismatch for {first}" in run.stderr
    assert f"expected {published}" in run.stderr
    assert f"got {digests[first]}" in run.stderr


def test_wrong_pinned_digest_for_one_file_is_reported(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    digests = write_mnist(tmp_path / "mirror", *small_mnist(rng))
    wrong = dict(digests)
    wrong["t10k-labels-idx1-ubyte.gz"] = "0" * 64

    run = stage("download", {"source": "mnist", "mirror": (tmp_path / "mirror").as_uri(), "sha256": wrong})

    assert run.returncode == 1
    assert (
        f"sha256 mismatch for t10k-labels-idx1-ubyte.gz: expected {'0' * 64}, "
        f"got {digests['t10k-labels-idx1-ubyte.gz']}"
    ) in run.stderr


def test_cifar10_from_local_mirror(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    batches = cifar_batches(rng)
    digest = write_cifar(tmp_path / "mirror" / CIFAR_NAME, batches)

    run = stage(
        "download", {"source": "cifar10", "mirror": (tmp_path / "mirror").as_uri(), "sha256": {CIFAR_NAME: digest}}
    ).check()

    with np.load(run.output("dataset"), allow_pickle=False) as data:
        x, y = data["x"], data["y"]
        assert x.shape == (12, 32, 32, 3)
        assert list(data["class_names"]) == CIFAR_LABELS
    row = batches["data_batch_1"][0][0]
    # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    assert x[0, 0, 0].tolist() == [row[0], row[1024], row[2048]]
    assert x[0, 1, 2, 2] == row[2048 + 32 + 2]
    expected_labels = [
        label for name in sorted(batches, key=lambda n: (n == "test_batch", n)) for label in batches[name][1]
    ]
    assert y.tolist() == expected_labels


def test_cifar10_checksum_mismatch(stage: StageRunner, tmp_path: Path) -> None:
    digest = write_cifar(tmp_path / "mirror" / CIFAR_NAME, cifar_batches(np.random.default_rng(5)))

    run = stage("download", {"source": "cifar10", "mirror": (tmp_path / "mirror").as_uri()})

    assert run.returncode == 1
    assert (
        f"sha256 mismatch for {CIFAR_NAME}: expected "
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce, got " + digest
    ) in run.stderr


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_cifar_batches_cannot_execute_code(digits: Callable[[str], ModuleType], tmp_path: Path) -> None:
    download = digits("download")
    marker = tmp_path / "executed"
    evil_meta = pickle.dumps({b"label_names": _RunsCommand(f"touch {marker}")}, protocol=2)
    tarball = tmp_path / CIFAR_NAME
    write_cifar(tarball, cifar_batches(np.random.default_rng(6)), meta=evil_meta)

    with pytest.raises(download.StageError, match="refusing to load"):
        download.parse_cifar10(tarball)
    assert not marker.exists()


def test_idx_parser_rejects_bad_files(digits: Callable[[str], ModuleType]) -> None:
    download = digits("download")
    good = idx(np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
    np.testing.assert_array_equal(download.parse_idx(good), np.arange(12).reshape(3, 2, 2))
    with pytest.raises(download.StageError, match="need 12 data bytes, file has 11"):
        download.parse_idx(good[:-1], "truncated")
    with pytest.raises(download.StageError, match="not an IDX file"):
        download.parse_idx(b"\x1f\x8b\x08\x00" + good[4:], "gzipped")


def test_idx_parser_reads_big_endian_types(digits: Callable[[str], ModuleType]) -> None:
    download = digits("download")
    values = np.array([[1, -2], [300, 70000]], dtype=">i4")
    blob = struct.pack(">HBB", 0, 0x0C, 2) + struct.pack(">2I", 2, 2) + values.tobytes()
    parsed = download.parse_idx(blob)
    assert parsed.dtype == np.dtype("int32")
    assert parsed.tolist() == [[1, -2], [300, 70000]]


def test_unknown_source_is_rejected(stage: StageRunner) -> None:
    run = stage("download", {"source": "imagenet"})
    assert run.returncode == 1
    assert "unknown source 'imagenet'" in run.stderr
