"""Stage `calibrate`: temperature scaling fitted on the calibration split.

Finds the T > 0 that minimises the negative log-likelihood of softmax(logits / T) on the
calibration split (Guo et al., 2017). The search runs over log T on [log 0.05, log 20]
with SciPy's bounded Brent method, which involves no randomness, so the same logits always
give the same temperature. Dividing logits by T never changes the argmax, so accuracy is
untouched and only the confidences move.

Output `calibration` (JSON): temperature, NLL and ECE before/after, and the content
digests of the model and splits it was fitted on (release.py checks the model digest).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import scoring
from common import Contract, StageError, append_metrics, read_npz, run_stage, sha256_file, write_json
from model_io import configure_tensorflow, load_model, predict_logits
from scipy.optimize import minimize_scalar

LOG_T_BOUNDS = (math.log(0.05), math.log(20.0))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iterations: int) -> tuple[float, int, bool]:
    """Returns (temperature, iterations used, converged)."""
    if max_iterations < 1:
        raise StageError(f"param max_iterations must be >= 1, got {max_iterations}")
    result = minimize_scalar(
        lambda log_t: scoring.nll(logits, labels, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"maxiter": max_iterations, "xatol": 1e-6},
    )
    return float(math.exp(result.x)), int(result.nfev), bool(result.success)


def main(contract: Contract) -> None:
    max_iterations = contract.param("max_iterations", 200)
    bins = contract.param("bins", 10)
    configure_tensorflow(seed=0)

    splits_path, model_path = contract.input("splits"), contract.input("model")
    splits = read_npz(splits_path)
    x, y = splits["x_calib"], splits["y_calib"].astype(np.int64)
    if len(y) == 0:
        raise StageError("the calibration split is empty: nothing to fit a temperature on")
    logits = predict_logits(load_model(model_path), x)

    temperature, iterations, converged = fit_temperature(logits, y, max_iterations)
    if not converged:
        print(
            f"warning: temperature search stopped after {iterations} evaluations (param max_iterations)",
            file=sys.stderr,
        )
    scores = {
        "temperature": temperature,
        "nll_before": scoring.nll(logits, y),
        "nll_after": scoring.nll(logits, y, temperature),
        "ece_before": scoring.ece(logits, y, bins),
        "ece_after": scoring.ece(logits, y, bins, temperature),
        "accuracy": scoring.accuracy(logits, y),
    }
    record = {
        **scores,
        "samples": int(len(y)),
        "bins": bins,
        "iterations": iterations,
        "converged": converged,
        "inputs": {"model": sha256_file(model_path), "splits": sha256_file(splits_path)},
    }
    write_json(contract.output("calibration"), record)
    append_metrics(contract, scores)
    print(
        f"calibrate: T={temperature:.4f} NLL {scores['nll_before']:.4f} -> {scores['nll_after']:.4f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main)
