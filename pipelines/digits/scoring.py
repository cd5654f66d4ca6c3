"""Classification scores computed from logits with NumPy only.

calibrate.py and the evaluation notebook share these so that "ECE" and "NLL" mean the
same thing in the calibration record and in the report. Everything works in float64 on
logits that were already computed, which keeps the notebook free of TensorFlow (its
native log lines would otherwise land in the report) and makes the numbers exact
functions of the stored logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def log_softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """Row-wise log-probabilities of logits / temperature, stable for large logits."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    out: FloatArray = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return out


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    out: FloatArray = np.exp(log_softmax(logits, temperature))
    return out


def nll(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy) of the true labels."""
    y = np.asarray(labels, dtype=np.int64)
    logp = log_softmax(logits, temperature)
    return float(-logp[np.arange(len(y)), y].mean())


def accuracy(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.int64)
    return float((np.asarray(logits).argmax(axis=1) == y).mean())


@dataclass(frozen=True)
class Reliability:
    """Per-bin confidence/accuracy, the data behind both ECE and the reliability diagram."""

    edges: FloatArray
    counts: IntArray
    confidence: FloatArray
    accuracy: FloatArray

    @property
    def ece(self) -> float:
        """Expected calibration error: bin-weighted mean |accuracy - confidence|."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        gaps = np.abs(self.accuracy - self.confidence) * self.counts
        return float(gaps.sum() / total)


def reliability(logits: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 10, temperature: float = 1.0) -> Reliability:
    """Bin predictions by top-class confidence into `bins` equal-width bins on [0, 1].

    Bins are right-closed (a confidence of exactly 1.0 falls in the last bin); empty
    bins report zero confidence and accuracy and carry no weight in the ECE.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y = np.asarray(labels, dtype=np.int64)
    probs = softmax(logits, temperature)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(index, weights=conf, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    safe = np.maximum(counts, 1)
    return Reliability(edges=edges, counts=counts, confidence=conf_sum / safe, accuracy=acc_sum / safe)


def ece(logits: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 10, temperature: float = 1.0) -> float:
    return reliability(logits, labels, bins, temperature).ece


def recall_per_class(logits: npt.ArrayLike, labels: npt.ArrayLike, n_classes: int) -> FloatArray:
    """Share of each class's samples predicted as that class (NaN for a class with none)."""
    matrix = confusion_matrix(logits, labels, n_classes)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)
    return out


def confusion_matrix(logits: npt.ArrayLike, labels: npt.ArrayLike, n_classes: int) -> IntArray:
    """Counts with true classes as rows and predicted classes as columns."""
    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(logits).argmax(axis=1)
    out: IntArray = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return out.astype(np.int64)
