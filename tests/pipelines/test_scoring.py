"""Calibration maths and deterministic file helpers, in-process (no TensorFlow)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

Array = np.ndarray[Any, Any]

Importer = Callable[[str], ModuleType]


def sample_labels(logits: Array, temperature: float, rng: np.random.Generator) -> Array:
    z = logits / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


def test_fit_temperature_recovers_the_generating_temperature(digits: Importer) -> None:
    calibrate = digits("calibrate")
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 10))
    labels = sample_labels(logits, 2.0, rng)  # the logits are overconfident by a factor 2

    temperature, _, converged = calibrate.fit_temperature(logits, labels, max_iterations=200)

    assert converged
    assert temperature == pytest.approx(2.0, rel=0.1)
    scoring = digits("scoring")
    assert scoring.nll(logits, labels, temperature) < scoring.nll(logits, labels)
    assert scoring.ece(logits, labels, 10, temperature) < scoring.ece(logits, labels, 10)
    # Same inputs, same answer, to the last bit.
    assert calibrate.fit_temperature(logits, labels, 200)[0] == temperature


def test_ece_and_reliability_bins(digits: Importer) -> None:
    scoring = digits("scoring")
    # Two samples at confidence ~0.9 (one right, one wrong) and one at ~0.55 (right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.45, 0.55]])
    logits = np.log(probs)
    labels = np.array([0, 1, 1])
    rel = scoring.reliability(logits, labels, bins=10)
    assert rel.counts.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 2, 0]
    assert rel.accuracy[8] == pytest.approx(0.5) and rel.confidence[8] == pytest.approx(0.9)
    assert rel.ece == pytest.approx((2 * 0.4 + 1 * 0.45) / 3)
    assert scoring.accuracy(logits, labels) == pytest.approx(2 / 3)
    assert scoring.nll(logits, labels) == pytest.approx(-(np.log(0.9) + np.log(0.1) + np.log(0.55)) / 3)
    assert scoring.confusion_matrix(logits, labels, 2).tolist() == [[1, 0], [1, 1]]


def test_npz_bytes_are_stable_and_loadable(digits: Importer, tmp_path: Path) -> None:
    common = digits("common")
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array(["x", "yz"]), "s": np.array(2.5)}
    blob = common.npz_bytes(arrays)
    assert common.npz_bytes(dict(reversed(list(arrays.items())))) == blob
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert [i.filename for i in zf.infolist()] == ["a.npy", "b.npy", "s.npy"]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    path = tmp_path / "arrays.npz"
    common.write_npz(path, arrays)
    loaded = common.read_npz(path)
    np.testing.assert_array_equal(loaded["b"], arrays["b"])
    assert loaded["s"].shape == () and float(loaded["s"]) == 2.5
    assert loaded["a"].tolist() == ["x", "yz"]
    # Object arrays would need pickle: refused rather than written non-portably.
    with pytest.raises(ValueError):
        common.npz_bytes({"o": np.array([{"k": 1}], dtype=object)})
