"""The split stage: hash partition of the reference data, and each data check firing on crafted data."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .digits_harness import StageRun, StageRunner

Array = np.ndarray[Any, Any]

REFERENCE_PARAMS = {"buckets": 10, "leakage": "fail", "imbalance": "warn", "unnormalised": "warn", "constant": "warn"}
QUIET = {"buckets": 10, "leakage": "off", "imbalance": "off", "unnormalised": "off", "constant": "off"}
SPLIT_OF_BUCKET = {7: "val", 8: "calib", 9: "test"}


def bucket(sample_id: str) -> int:
    return int(hashlib.sha256(sample_id.encode()).hexdigest(), 16) % 10


def ids_by_split(count: int, prefix: str = "s") -> dict[str, list[str]]:
    """`count` ids landing in each split, found by trying sequential names."""
    found: dict[str, list[str]] = {"train": [], "val": [], "calib": [], "test": []}
    i = 0
    while min(len(v) for v in found.values()) < count:
        name = f"{prefix}{i}"
        found[SPLIT_OF_BUCKET.get(bucket(name), "train")].append(name)
        i += 1
    return {k: v[:count] for k, v in found.items()}


def write_dataset(path: Path, x: Array, y: Array, ids: list[str], scale: float = 16.0) -> Path:
    np.savez(
        path,
        x=x,
        y=np.asarray(y, dtype=np.int64),
        ids=np.array(ids),
        scale=np.array(scale),
        class_names=np.array([str(c) for c in range(10)]),
    )
    return path


def random_dataset(rng: np.random.Generator, per_split: int = 60) -> tuple[Array, Array, list[str]]:
    """Distinct random 8x8 images (0..16), balanced labels, `per_split` samples in every split."""
    groups = ids_by_split(per_split)
    ids = [i for name in ("train", "val", "calib", "test") for i in groups[name]]
    x = rng.integers(0, 17, size=(len(ids), 8, 8, 1), dtype=np.uint8)
    y = np.arange(len(ids)) % 10
    return x, y, ids


@pytest.fixture
def reference_split(stage: StageRunner, digits_dataset: Path) -> StageRun:
    return stage("split", REFERENCE_PARAMS, {"dataset": digits_dataset}).check()


def test_reference_split_partitions_by_id_hash(reference_split: StageRun, digits_dataset: Path) -> None:
    with np.load(digits_dataset) as dataset:
        ids, x_raw = dataset["ids"], dataset["x"]
    with np.load(reference_split.output("splits")) as splits:
        sizes = {name: len(splits[f"y_{name}"]) for name in ("train", "val", "calib", "test")}
        assert sum(sizes.values()) == len(ids) == 1797
        for name in ("train", "val", "calib", "test"):
            for sample_id in splits[f"ids_{name}"][:25]:
                assert SPLIT_OF_BUCKET.get(bucket(str(sample_id)), "train") == name
        x_test = splits["x_test"]
        assert x_test.dtype == np.float32 and x_test.min() >= 0 and x_test.max() <= 1
        first = int(np.nonzero(ids == splits["ids_test"][0])[0][0])
        np.testing.assert_allclose(x_test[0], x_raw[first] / 16.0)
    # About 70/10/10/10, as the buckets promise.
    assert 0.65 < sizes["train"] / 1797 < 0.75
    assert all(0.07 < sizes[name] / 1797 < 0.13 for name in ("val", "calib", "test"))
    assert reference_split.headline["train_size"] == sizes["train"]


def test_reference_data_passes_its_own_checks(reference_split: StageRun) -> None:
    checks = {c["code"]: c for c in reference_split.json("checks")["checks"]}
    assert checks["TY-LEAK"]["status"] == "pass"
    assert checks["TY-EMPTY-SPLIT"]["status"] == "pass"
    # Three corner pixels of sklearn's digits are always 0: a real, harmless warning.
    assert checks["TY-CONSTANT"]["count"] == 3 and checks["TY-CONSTANT"]["status"] == "warn"
    constant = reference_split.checks["TY-CONSTANT"]
    assert constant["severity"] == "warn" and constant["message"].startswith("3 features with zero variance")
    assert constant["details"] == {"count": 3, "param": "constant"} and "TY-LEAK" not in reference_split.checks
    assert reference_split.headline["check_leakage"] == 0
    assert reference_split.headline["duplicates_dropped"] == 0


def test_split_is_byte_identical_across_processes(
    stage: StageRunner, reference_split: StageRun, digits_dataset: Path
) -> None:
    again = stage("split", REFERENCE_PARAMS, {"dataset": digits_dataset}).check()
    assert again.digest("splits") == reference_split.digest("splits")
    assert again.digest("checks") == reference_split.digest("checks")


def test_leakage_across_splits_fails(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y, ids = random_dataset(rng)
    groups = ids_by_split(3, prefix="leak")
    # The same image twice under different labels: not an exact duplicate, so it is
    # not dropped, and its two ids hash into train and test.
    x = np.concatenate([x, x[:3], x[:3]])
    y = np.concatenate([y, [1, 2, 3], [4, 5, 6]])
    ids = ids + groups["train"] + groups["test"]
    dataset = write_dataset(tmp_path / "d.npz", x, y, ids)

    failed = stage("split", {**QUIET, "leakage": "fail"}, {"dataset": dataset})
    assert failed.returncode == 1
    leak = failed.checks["TY-LEAK"]
    assert leak["severity"] == "fail" and leak["message"].startswith("3 identical images appear in more than one split")
    assert "param leakage" in leak["message"]
    assert not failed.output("splits").exists()
    assert failed.headline["check_leakage"] == 3

    warned = stage("split", {**QUIET, "leakage": "warn"}, {"dataset": dataset}).check()
    assert warned.checks["TY-LEAK"]["severity"] == "warn" and warned.checks["TY-LEAK"]["details"]["count"] == 3
    assert {c["code"]: c["status"] for c in warned.json("checks")["checks"]}["TY-LEAK"] == "warn"


def test_exact_duplicates_are_dropped_before_splitting(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y, ids = random_dataset(rng)
    groups = ids_by_split(4, prefix="dup")
    x = np.concatenate([x, x[:4]])
    y = np.concatenate([y, y[:4]])
    dataset = write_dataset(tmp_path / "d.npz", x, y, ids + groups["test"])

    run = stage("split", {**QUIET, "leakage": "fail"}, {"dataset": dataset}).check()
    assert run.headline["duplicates_dropped"] == 4
    assert run.headline["check_leakage"] == 0
    with np.load(run.output("splits")) as splits:
        assert sum(len(splits[f"y_{n}"]) for n in ("train", "val", "calib", "test")) == len(ids)

    kept = stage("split", {**QUIET, "leakage": "fail", "deduplicate": False}, {"dataset": dataset})
    assert kept.returncode == 1 and kept.checks["TY-LEAK"]["details"]["count"] == 4


def test_class_imbalance(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x, y, ids = random_dataset(rng, per_split=100)
    y = y.copy()
    y[y == 3] = 4  # class 3 disappears: under half its fair share in all four splits
    dataset = write_dataset(tmp_path / "d.npz", x, y, ids)

    run = stage("split", {**QUIET, "imbalance": "fail"}, {"dataset": dataset})
    assert run.returncode == 1
    assert run.checks["TY-IMBALANCE"]["severity"] == "fail" and run.checks["TY-IMBALANCE"]["details"]["count"] == 4
    assert "param imbalance" in run.checks["TY-IMBALANCE"]["message"]

    balanced = write_dataset(tmp_path / "b.npz", x, np.arange(len(ids)) % 10, ids)
    balanced_run = stage("split", {**QUIET, "imbalance": "fail"}, {"dataset": balanced}).check()
    assert balanced_run.headline["check_imbalance"] == 0


def test_unnormalised_features(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x, y, ids = random_dataset(rng)
    # Declared scale 1 but values up to 16: normalisation leaves them outside [0, 1].
    dataset = write_dataset(tmp_path / "d.npz", x, y, ids, scale=1.0)
    expected = int((x > 1).sum())

    run = stage("split", {**QUIET, "unnormalised": "fail"}, {"dataset": dataset})
    assert run.returncode == 1
    assert run.checks["TY-UNNORMALISED"]["message"].startswith(f"{expected} feature values outside [0, 1]")
    assert "param unnormalised" in run.checks["TY-UNNORMALISED"]["message"]

    off = stage("split", {**QUIET, "unnormalised": "off"}, {"dataset": dataset}).check()
    assert off.headline["check_unnormalised"] == expected
    assert "TY-UNNORMALISED" not in off.checks


def test_constant_features(stage: StageRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x, y, ids = random_dataset(rng)
    x = x.copy()
    x[:, 0, :, 0] = 5  # the whole first row of pixels is constant: 8 features
    dataset = write_dataset(tmp_path / "d.npz", x, y, ids)

    run = stage("split", {**QUIET, "constant": "fail"}, {"dataset": dataset})
    assert run.returncode == 1
    assert run.checks["TY-CONSTANT"]["message"].startswith("8 features with zero variance")
    assert run.checks["TY-CONSTANT"]["severity"] == "fail"


def test_empty_split_fails_by_default(stage: StageRunner, tmp_path: Path) -> None:
    groups = ids_by_split(2)
    ids = groups["train"] + groups["val"]  # nothing hashes into calibration or test
    x = np.random.default_rng(5).integers(0, 17, size=(4, 8, 8, 1), dtype=np.uint8)
    dataset = write_dataset(tmp_path / "d.npz", x, np.arange(4), ids)

    run = stage("split", QUIET, {"dataset": dataset})
    assert run.returncode == 1
    assert run.checks["TY-EMPTY-SPLIT"]["message"].startswith("2 splits without samples")


def test_invalid_check_level_is_rejected(stage: StageRunner, digits_dataset: Path) -> None:
    run = stage("split", {**REFERENCE_PARAMS, "leakage": "maybe"}, {"dataset": digits_dataset})
    assert run.returncode == 1
    assert "param 'leakage' must be one of fail, warn, off" in run.stderr
