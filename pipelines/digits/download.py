"""Stage `download`: fetch a labelled image dataset and write it as one `dataset` npz.

The output holds
  x            uint8 images, shape (n, height, width, channels), original intensity scale
  y            int64 labels
  ids          per-sample id: sha256 of the sample's content (image shape, bytes, label),
               so the split stage can partition by content and exact duplicates always
               land in the same split whatever the download order
  scale        float64 scalar, the maximum intensity of the source (16 for digits,
               255 for MNIST and CIFAR-10); split.py divides by it to normalise
  class_names  class names, index = label

Sources (param `source`):
  sklearn-digits  scikit-learn's bundled 8x8 digits; no network
  mnist           the four MNIST IDX gz files
  cifar10         the CIFAR-10 python tarball
Remote files are verified against pinned sha256 digests before they are parsed. Param
`mirror` replaces the base URL (any urllib URL, including file:// for local copies) and
param `sha256` ({file name: digest}) replaces pinned digests for mirrors that host
different bytes on purpose.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from common import Contract, StageError, append_metrics, run_stage, write_npz

MNIST_MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
CIFAR10_MIRROR = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_FILES: dict[str, str] = {
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); all big-endian.
_IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

Dataset = dict[str, np.ndarray]


class ChecksumError(StageError):
    """A downloaded file does not hash to the digest it was pinned to."""


def content_ids(x: np.ndarray, y: np.ndarray) -> npt.NDArray[np.str_]:
    """sha256 of each sample's shape, bytes and label, as 64-char hex strings."""
    ids = []
    for image, label in zip(x, y):
        digest = hashlib.sha256()
        digest.update(repr(image.shape).encode())
        digest.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        digest.update(f"|{int(label)}".encode())
        ids.append(digest.hexdigest())
    return np.array(ids, dtype="<U64")


def make_dataset(x: np.ndarray, y: np.ndarray, scale: float, class_names: list[str]) -> Dataset:
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or len(x) != len(y):
        raise StageError(f"dataset has inconsistent shapes: images {x.shape}, labels {y.shape}")
    x = np.ascontiguousarray(x, dtype=np.uint8)
    y = np.asarray(y, dtype=np.int64)
    return {
        "x": x,
        "y": y,
        "ids": content_ids(x, y),
        "scale": np.array(scale, dtype=np.float64),
        "class_names": np.array(class_names, dtype=np.str_),
    }


def load_sklearn_digits() -> Dataset:
    """scikit-learn ships these 1797 images inside the package: nothing is downloaded."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.asarray(digits.images)
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise StageError("unexpected sklearn digits content: pixel values are not integers in 0..16")
    return make_dataset(images.astype(np.uint8), np.asarray(digits.target), 16.0, [str(i) for i in range(10)])


# --- fetching -----------------------------------------------------------------------


def file_url(mirror: str, name: str) -> str:
    return mirror.rstrip("/") + "/" + name


def fetch(url: str, name: str, expected_sha256: str, dest_dir: Path, timeout: float = 60.0) -> Path:
    """Download `url` into dest_dir/name and refuse it unless it hashes to expected_sha256."""
    dest = dest_dir / name
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StageError(f"cannot download {name} from {url}: {exc}") from exc
    verify_sha256(name, digest.hexdigest(), expected_sha256)
    return dest


def verify_sha256(name: str, actual: str, expected: str) -> None:
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {name}: expected {expected.lower()}, got {actual.lower()}. "
            "The file is corrupt or not the published one; if your mirror deliberately "
            "hosts different bytes, pin them with the param sha256: {<file name>: <digest>}"
        )


def pinned_digests(defaults: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise StageError(f"param sha256 names unknown files {unknown}; known: {sorted(defaults)}")
    digests = dict(defaults)
    for name, value in overrides.items():
        if not isinstance(value, str) or len(value) != 64:
            raise StageError(f"param sha256[{name!r}] must be a 64-character hex digest, got {value!r}")
        digests[name] = value
    return digests


# --- MNIST (IDX) ----------------------------------------------------------------------


def parse_idx(data: bytes, name: str = "idx") -> np.ndarray:
    """Decode an IDX file: 2 zero bytes, type code, ndim, ndim big-endian uint32 dims, data."""
    if len(data) < 4:
        raise StageError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise StageError(f"{name}: not an IDX file (magic bytes {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise StageError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = data[header:]
    if len(body) != expected:
        raise StageError(f"{name}: IDX dims {dims} need {expected} data bytes, file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx_gz(path: Path) -> np.ndarray:
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise StageError(f"{path.name}: not a valid gzip file: {exc}") from exc
    return parse_idx(data, path.name)


def parse_mnist(files: Mapping[str, Path]) -> Dataset:
    """Train and test files are concatenated: split.py re-partitions by content hash."""
    xs, ys = [], []
    for prefix in ("train", "t10k"):
        images = read_idx_gz(files[f"{prefix}-images-idx3-ubyte.gz"])
        labels = read_idx_gz(files[f"{prefix}-labels-idx1-ubyte.gz"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise StageError(f"MNIST {prefix}: images {images.shape} do not match labels {labels.shape}")
        if images.dtype != np.uint8:
            raise StageError(f"MNIST {prefix}: images must be unsigned bytes, got {images.dtype}")
        xs.append(images)
        ys.append(labels.astype(np.int64))
    y = np.concatenate(ys)
    if y.min() < 0 or y.max() > 9:
        raise StageError(f"MNIST labels must be 0..9, got {int(y.min())}..{int(y.max())}")
    return make_dataset(np.concatenate(xs), y, 255.0, [str(i) for i in range(10)])


def load_mnist(mirror: str, digests: Mapping[str, str], workdir: Path) -> Dataset:
    files = {name: fetch(file_url(mirror, name), name, digests[name], workdir) for name in MNIST_FILES}
    return parse_mnist(files)


# --- CIFAR-10 (python pickles in a tarball) ----------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches but nothing else: only NumPy array reconstruction is
    allowed, so a tampered tarball from a mirror cannot run code (sha256 pins can be overridden)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, name: str) -> dict[str, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise StageError(f"{name}: not a CIFAR python batch: {exc}") from exc
    if not isinstance(obj, dict):
        raise StageError(f"{name}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def parse_cifar10(tarball: Path) -> Dataset:
    """Read the five training batches and the test batch, images as HWC uint8."""
    try:
        tar = tarfile.open(tarball, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise StageError(f"{tarball.name}: not a gzip tarball: {exc}") from exc
    with tar:

        def member(name: str) -> bytes:
            path = f"{CIFAR10_DIR}/{name}"
            try:
                fh = tar.extractfile(path)
            except KeyError:
                fh = None
            if fh is None:
                raise StageError(f"{tarball.name}: missing member {path}")
            return fh.read()

        meta = _unpickle(member("batches.meta"), "batches.meta")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
        xs, ys = [], []
        for batch_name in CIFAR10_BATCHES:
            batch = _unpickle(member(batch_name), batch_name)
            data = np.asarray(batch.get("data"))
            labels = np.asarray(batch.get("labels"), dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
                raise StageError(
                    f"{batch_name}: expected uint8 data (n, 3072) and n labels, "
                    f"got {data.shape} {data.dtype}, {labels.shape}"
                )
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels)
    y = np.concatenate(ys)
    if len(names) != 10 or y.min() < 0 or y.max() >= len(names):
        raise StageError(f"CIFAR-10 labels {int(y.min())}..{int(y.max())} do not match label_names {names}")
    return make_dataset(np.concatenate(xs), y, 255.0, names)


def load_cifar10(mirror: str, digests: Mapping[str, str], workdir: Path) -> Dataset:
    (name,) = CIFAR10_FILES
    return parse_cifar10(fetch(file_url(mirror, name), name, digests[name], workdir))


# --- stage ------------------------------------------------------------------------------


def main(contract: Contract) -> None:
    source = contract.param("source", "sklearn-digits")
    mirror_override = contract.param("mirror", "")
    sha_overrides: dict[str, Any] = contract.param("sha256", {})
    if source == "sklearn-digits":
        if mirror_override or sha_overrides:
            raise StageError(
                "params mirror/sha256 do not apply to source sklearn-digits (it is bundled with scikit-learn)"
            )
        dataset = load_sklearn_digits()
    elif source in ("mnist", "cifar10"):
        defaults, default_mirror, loader = (
            (MNIST_FILES, MNIST_MIRROR, load_mnist)
            if source == "mnist"
            else (CIFAR10_FILES, CIFAR10_MIRROR, load_cifar10)
        )
        digests = pinned_digests(defaults, sha_overrides)
        with tempfile.TemporaryDirectory(prefix="tycho-download-") as tmp:
            dataset = loader(mirror_override or default_mirror, digests, Path(tmp))
    else:
        raise StageError(f"unknown source {source!r}; param source must be one of sklearn-digits, mnist, cifar10")

    write_npz(contract.output("dataset"), dataset)
    x = dataset["x"]
    append_metrics(
        contract,
        {
            "samples": len(x),
            "classes": len(dataset["class_names"]),
            "height": x.shape[1],
            "width": x.shape[2],
            "channels": x.shape[3],
        },
    )
    print(f"download: {source}: {len(x)} samples of shape {x.shape[1:]}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
