"""Stage `calibrate`: temperature scaling fitted on the calibration split.

Finds the T > 0 that minimises the negative log-likelihood of softmax(logits / T) on the
calibration split (Guo et al., 2017). The search runs over log T on [log 0.05, log 20]
with SciPy's bounded Brent method, which involves no randomness, so the same logits always
give the same temperature. Dividing logits by T never changes the argmax, so accuracy is
untouched and only the confidences move.

A temperature at a bound of the search is not a fit: when the model classifies the whole
calibration split correctly, the NLL keeps falling as T shrinks and the search stops at
0.05 (when it gets everything wrong, at 20). That is check TY-TEMPERATURE-BOUND (param
`temperature_bound`: warn by default, fail or off; docs/checks.md), with the bound, the
fitted T, the split's accuracy and the NLL before/after in its details; the calibration
record keeps the reported check, so the evaluation report can show it.

Output `calibration` (JSON): temperature, NLL and ECE before/after, the checks reported,
and the content digests of the model and splits it was fitted on (release.py checks the
model digest).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import scoring
from common import (
    Contract,
    StageError,
    append_metrics,
    check_level,
    read_npz,
    report_check,
    run_stage,
    sha256_file,
    write_json,
)
from model_io import configure_tensorflow, load_model, predict_logits
from scipy.optimize import minimize_scalar

T_BOUNDS = (0.05, 20.0)
LOG_T_BOUNDS = (math.log(T_BOUNDS[0]), math.log(T_BOUNDS[1]))
# A fitted log T this close to a bound counts as at it: the search's own tolerance (xatol
# 1e-6 on log T) is far smaller, and a real minimum that close to 0.05 or 20 is no fit either.
BOUND_TOLERANCE = 1e-3
BOUND_CHECK = "TY-TEMPERATURE-BOUND"
BOUND_PARAM = "temperature_bound"


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


def bound_reached(logits: np.ndarray, labels: np.ndarray, temperature: float) -> tuple[str, float] | None:
    """("lower" or "upper", the bound) when the search ended at a bound, or when a bound fits
    at least as well as the temperature found: with large logit gaps the NLL reaches exactly
    0.0 in float64 before T reaches 0.05, and the search stops anywhere on that flat floor."""
    log_t, fitted = math.log(temperature), scoring.nll(logits, labels, temperature)
    for side, bound, log_bound in zip(("lower", "upper"), T_BOUNDS, LOG_T_BOUNDS):
        if abs(log_t - log_bound) <= BOUND_TOLERANCE or scoring.nll(logits, labels, bound) <= fitted:
            return side, bound
    return None


def bound_check(reached: tuple[str, float] | None, scores: dict[str, float], samples: int,
                level: str) -> dict[str, Any] | None:
    """The TY-TEMPERATURE-BOUND check as reported through $TYCHO_CHECKS, or None when the
    temperature is a fit inside its bounds or the check is off."""
    if reached is None or level == "off":
        return None
    side, bound = reached
    why = (f"the model classifies {scores['accuracy']:.1%} of the {samples} calibration samples correctly, so "
           "the NLL only falls as T shrinks" if side == "lower" else
           f"the model classifies only {scores['accuracy']:.1%} of the {samples} calibration samples correctly, "
           "so the NLL only falls as T grows")
    message = (f"the NLL is lowest at the {side} bound {bound:g} of the temperature search (fitted T = "
               f"{scores['temperature']:.4g}): {why}, and temperature scaling has nothing to fit (use a larger or "
               "harder calibration split; "
               f"param {BOUND_PARAM}: {'warn or off to accept it' if level == 'fail' else 'fail to refuse it'})")
    details = {"bound": bound, "side": side, "temperature": scores["temperature"],
               "calibration_accuracy": scores["accuracy"], "samples": samples,
               "nll_before": scores["nll_before"], "nll_after": scores["nll_after"], "param": BOUND_PARAM}
    return {"code": BOUND_CHECK, "severity": level, "message": message, "details": details}


def main(contract: Contract) -> None:
    max_iterations = contract.param("max_iterations", 200)
    bins = contract.param("bins", 10)
    level = check_level(contract, BOUND_PARAM, "warn")
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
    reached = bound_reached(logits, y, temperature)
    check = bound_check(reached, scores, int(len(y)), level)
    append_metrics(contract, {**scores, f"check_{BOUND_PARAM}": int(reached is not None)})
    if check is not None:
        report_check(check["code"], check["severity"], check["message"], check["details"])
        if check["severity"] == "fail":
            raise SystemExit(1)  # the wrapper fails the stage with the check's code; nothing is written
    record = {
        **scores,
        "samples": int(len(y)),
        "bins": bins,
        "iterations": iterations,
        "converged": converged,
        "bounds": list(T_BOUNDS),
        "checks": [check] if check is not None else [],
        "inputs": {"model": sha256_file(model_path), "splits": sha256_file(splits_path)},
    }
    write_json(contract.output("calibration"), record)
    print(
        f"calibrate: T={temperature:.4f} NLL {scores['nll_before']:.4f} -> {scores['nll_after']:.4f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main)
