"""Stage `release`: gate the tuned, calibrated model on a test metric and describe it for a registry.

The gate passes when metrics[metric] >= threshold. On failure the stage exits 1 without
writing `registry_entry`, so nothing is published. It also refuses a calibration fitted
on a different model than the one being released.

The registry entry identifies everything by content: version = 1.0.0+<first 12 hex digits
of the model's sha256>, plus the sha256 of the model, calibration and metrics inputs and
the digests the calibration recorded for what it was fitted on. It never contains run ids
or times, so releasing the same artefacts twice gives the same entry.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from common import Contract, StageError, append_metrics, read_json, run_stage, sha256_file, write_json

BASE_VERSION = "1.0.0"


def gate(metrics: dict[str, Any], metric: str, threshold: float) -> tuple[bool, float]:
    if metric not in metrics:
        raise StageError(
            f"param metric {metric!r} is not in the metrics input; available: {', '.join(sorted(metrics))}"
        )
    value = metrics[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StageError(f"metric {metric!r} is not a finite number: {value!r}")
    return float(value) >= threshold, float(value)


def main(contract: Contract) -> None:
    metric = contract.param("metric", "test_accuracy")
    threshold = contract.param("threshold", 0.95)
    model_name = contract.param("model_name", "digits-cnn")

    model_path = contract.input("model")
    calibration_path = contract.input("calibration")
    metrics_path = contract.input("metrics")
    try:
        metrics = read_json(metrics_path)
        calibration = read_json(calibration_path)
    except json.JSONDecodeError as exc:
        raise StageError(f"cannot parse an input as JSON: {exc}") from exc
    if not isinstance(metrics, dict) or not isinstance(calibration, dict):
        raise StageError("inputs metrics and calibration must be JSON objects")

    digests = {
        "model": sha256_file(model_path),
        "calibration": sha256_file(calibration_path),
        "metrics": sha256_file(metrics_path),
    }
    fitted_on = calibration.get("inputs", {})
    if fitted_on.get("model") not in (None, digests["model"]):
        raise StageError(
            f"the calibration was fitted on model {fitted_on['model']}, not on the model being released "
            f"({digests['model']}); wire calibrate and release to the same model output"
        )

    passed, value = gate(metrics, metric, threshold)
    append_metrics(contract, {"gate_value": value, "gate_threshold": threshold, "gate_passed": int(passed)})
    if not passed:
        print(
            f"error: release gate failed: {metric} = {value:.6g} is below the threshold {threshold:.6g}. "
            f"Nothing was released. Improve the model (e.g. more epochs or trials in train/tune) "
            f"or, if the bar is wrong, lower the release param threshold.",
            file=sys.stderr,
        )
        raise SystemExit(1)

    entry = {
        "model_name": model_name,
        "version": f"{BASE_VERSION}+{digests['model'][:12]}",
        "model_sha256": digests["model"],
        "calibration_sha256": digests["calibration"],
        "temperature": calibration.get("temperature"),
        "metrics": metrics,
        "gate": {"metric": metric, "threshold": threshold, "value": value},
        "provenance": {"inputs": digests, "calibration_fitted_on": fitted_on},
    }
    write_json(contract.output("registry_entry"), entry)
    print(f"release: {model_name} {entry['version']} ({metric} {value:.4f} >= {threshold})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
