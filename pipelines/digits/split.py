"""Stage `split`: deterministic train/validation/calibration/test partition plus data checks.

Each sample goes to bucket int(sha256(id), 16) % buckets: the last bucket is test, the
one before calibration, the one before that validation, all others train (with 10
buckets: 0-6 train, 7 validation, 8 calibration, 9 test). Hashing ids instead of
shuffling makes a sample's split independent of download order and of every other
sample, so adding data never moves existing samples between splits.

Exact duplicates (same image bytes and label) are dropped before splitting, keeping the
first occurrence; `duplicates_dropped` reports how many (param `deduplicate`).

Images are normalised here (x / dataset scale, as float32 NHWC in [0, 1]); downstream
stages consume `splits` as is.

Checks, each with a level `fail`, `warn` or `off` from the param named in brackets:
  TY-LEAK          (leakage)       identical images in more than one split
  TY-IMBALANCE     (imbalance)     a class under half its fair share of a split
  TY-UNNORMALISED  (unnormalised)  feature values outside [0, 1] after normalisation
  TY-CONSTANT      (constant)      features with zero variance in the train split
  TY-EMPTY-SPLIT   (empty_split)   a split without samples
Each check that fires is reported with its code through the check contract ($TYCHO_CHECKS,
see docs/checks.md): `warn` is shown with the run, `fail` fails the stage with its code
before any output is written.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from common import (
    Contract,
    StageError,
    append_metrics,
    check_level,
    read_npz,
    report_check,
    run_stage,
    write_json,
    write_npz,
)

SPLITS = ("train", "val", "calib", "test")


@dataclass(frozen=True)
class CheckSpec:
    code: str
    param: str
    default_level: str
    description: str


CHECKS = (
    CheckSpec("TY-LEAK", "leakage", "fail", "identical images appear in more than one split"),
    CheckSpec(
        "TY-IMBALANCE", "imbalance", "warn", "(split, class) pairs under half the class's fair share of the split"
    ),
    CheckSpec("TY-UNNORMALISED", "unnormalised", "warn", "feature values outside [0, 1] after normalisation"),
    CheckSpec("TY-CONSTANT", "constant", "warn", "features with zero variance in the train split"),
    CheckSpec("TY-EMPTY-SPLIT", "empty_split", "fail", "splits without samples"),
)


def bucket_of(sample_id: str, buckets: int) -> int:
    return int(hashlib.sha256(sample_id.encode("utf-8")).hexdigest(), 16) % buckets


def assign_splits(ids: np.ndarray, buckets: int) -> np.ndarray:
    """Split index per sample: 0 train, 1 val, 2 calib, 3 test."""
    if buckets < 4:
        raise StageError(f"param buckets must be >= 4 (train, val, calib and test need one each), got {buckets}")
    b = np.array([bucket_of(str(i), buckets) for i in ids], dtype=np.int64)
    return np.clip(b - (buckets - 4), 0, 3)


def image_keys(x: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(x).reshape(len(x), int(np.prod(x.shape[1:])))
    return [hashlib.sha256(row.tobytes()).digest() for row in flat]


def deduplicate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of first occurrences of each distinct (image, label) pair, in dataset order."""
    seen: set[bytes] = set()
    keep = []
    for i, key in enumerate(image_keys(x)):
        full = key + int(y[i]).to_bytes(8, "little", signed=True)
        if full not in seen:
            seen.add(full)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def count_leakage(parts: dict[str, dict[str, np.ndarray]]) -> int:
    """Distinct images found in two or more splits (whatever their labels)."""
    owners: dict[bytes, set[str]] = {}
    for name in SPLITS:
        for key in image_keys(parts[name]["x"]):
            owners.setdefault(key, set()).add(name)
    return sum(1 for splits in owners.values() if len(splits) > 1)


def count_imbalance(parts: dict[str, dict[str, np.ndarray]], n_classes: int) -> int:
    count = 0
    for name in SPLITS:
        y = parts[name]["y"]
        if len(y) == 0:
            continue
        fair = len(y) / n_classes
        per_class = np.bincount(y, minlength=n_classes)
        count += int((per_class < fair / 2).sum())
    return count


def count_unnormalised(parts: dict[str, dict[str, np.ndarray]]) -> int:
    return sum(int(((p["x"] < 0) | (p["x"] > 1)).sum()) for p in parts.values())


def count_constant(parts: dict[str, dict[str, np.ndarray]]) -> int:
    x = parts["train"]["x"]
    if len(x) == 0:
        return 0
    flat = x.reshape(len(x), -1)
    return int((flat.max(axis=0) == flat.min(axis=0)).sum())


def count_empty(parts: dict[str, dict[str, np.ndarray]]) -> int:
    return sum(1 for p in parts.values() if len(p["y"]) == 0)


@dataclass(frozen=True)
class CheckResult:
    code: str
    param: str
    level: str
    count: int
    status: str  # pass, warn, fail or off (fired but switched off)
    description: str


def run_checks(parts: dict[str, dict[str, np.ndarray]], n_classes: int, levels: dict[str, str]) -> list[CheckResult]:
    counters: dict[str, Callable[[], int]] = {
        "leakage": lambda: count_leakage(parts),
        "imbalance": lambda: count_imbalance(parts, n_classes),
        "unnormalised": lambda: count_unnormalised(parts),
        "constant": lambda: count_constant(parts),
        "empty_split": lambda: count_empty(parts),
    }
    results = []
    for spec in CHECKS:
        level = levels[spec.param]
        count = counters[spec.param]()
        status = "pass" if count == 0 else level
        results.append(CheckResult(spec.code, spec.param, level, count, status, spec.description))
    return results


def check_levels(contract: Contract) -> dict[str, str]:
    return {spec.param: check_level(contract, spec.param, spec.default_level) for spec in CHECKS}


def main(contract: Contract) -> None:
    buckets = contract.param("buckets", 10)
    dedup = contract.param("deduplicate", True)
    levels = check_levels(contract)

    data = read_npz(contract.input("dataset"))
    for key in ("x", "y", "ids"):
        if key not in data:
            raise StageError(f"input dataset lacks array {key!r} (has {sorted(data)})")
    x_raw, y, ids = data["x"], data["y"].astype(np.int64), data["ids"].astype(str)
    if x_raw.ndim == 3:
        x_raw = x_raw[..., np.newaxis]
    if not (len(x_raw) == len(y) == len(ids)):
        raise StageError(f"dataset arrays disagree in length: x {len(x_raw)}, y {len(y)}, ids {len(ids)}")
    scale = float(data["scale"]) if "scale" in data else 1.0
    if "class_names" in data:
        class_names = data["class_names"].astype(str)
    else:
        class_names = np.array([str(c) for c in range(int(y.max()) + 1)])
    n_classes = len(class_names)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise StageError(f"labels {int(y.min())}..{int(y.max())} do not fit {n_classes} classes")

    keep = deduplicate(x_raw, y) if dedup else np.arange(len(y))
    dropped = len(y) - len(keep)
    x = (x_raw[keep].astype(np.float32) / np.float32(scale)).astype(np.float32)
    y, ids = y[keep], ids[keep]

    assignment = assign_splits(ids, buckets)
    parts = {
        name: {"x": x[assignment == k], "y": y[assignment == k], "ids": ids[assignment == k]}
        for k, name in enumerate(SPLITS)
    }
    results = run_checks(parts, n_classes, levels)
    sizes = {name: int(len(parts[name]["y"])) for name in SPLITS}

    metrics: dict[str, float | int] = {f"check_{r.param}": r.count for r in results}
    metrics.update({f"{name}_size": n for name, n in sizes.items()})
    metrics["duplicates_dropped"] = dropped
    append_metrics(contract, metrics)

    for r in results:
        if r.status in ("warn", "fail"):
            fix = f"fix the data, or set param {r.param} to warn or off to accept it" if r.status == "fail" else \
                f"param {r.param}: warn"
            report_check(r.code, r.status, f"{r.count} {r.description} ({fix})",
                         {"count": r.count, "param": r.param})
    if any(r.status == "fail" for r in results):
        raise SystemExit(1)  # the wrapper fails the stage with the failed checks' codes

    arrays: dict[str, np.ndarray] = {"class_names": class_names}
    for name in SPLITS:
        arrays[f"x_{name}"] = parts[name]["x"]
        arrays[f"y_{name}"] = parts[name]["y"]
        arrays[f"ids_{name}"] = parts[name]["ids"]
    write_npz(contract.output("splits"), arrays)
    write_json(
        contract.output("checks"),
        {
            "buckets": buckets,
            "checks": [asdict(r) for r in results],
            "duplicates_dropped": dropped,
            "sizes": sizes,
            "normalisation": {"scale": scale},
        },
    )
    print(f"split: sizes {sizes}, duplicates dropped {dropped}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
