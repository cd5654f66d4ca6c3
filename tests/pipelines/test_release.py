"""The release gate on crafted inputs (no TensorFlow needed: release only hashes and compares)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .digits_harness import StageRunner, sha256_file

PARAMS = {"metric": "test_accuracy", "threshold": 0.95, "model_name": "digits-cnn"}


@pytest.fixture
def release_inputs(tmp_path: Path) -> dict[str, Path]:
    model = tmp_path / "model"
    model.write_bytes(b"stand-in for a model archive")
    calibration = tmp_path / "calibration"
    calibration.write_text(
        json.dumps({"temperature": 1.25, "inputs": {"model": sha256_file(model), "splits": "ab" * 32}})
    )
    metrics = tmp_path / "metrics"
    metrics.write_text(json.dumps({"test_accuracy": 0.97, "test_ece": 0.02}))
    return {"model": model, "calibration": calibration, "metrics": metrics}


def test_release_writes_content_addressed_entry(stage: StageRunner, release_inputs: dict[str, Path]) -> None:
    run = stage("release", PARAMS, release_inputs).check()
    entry = run.json("registry_entry")
    model_digest = sha256_file(release_inputs["model"])
    assert entry["version"] == "1.0.0+" + model_digest[:12]
    assert entry["model_sha256"] == model_digest
    assert entry["calibration_sha256"] == sha256_file(release_inputs["calibration"])
    assert entry["provenance"]["inputs"] == {name: sha256_file(path) for name, path in release_inputs.items()}
    assert entry["provenance"]["calibration_fitted_on"]["splits"] == "ab" * 32
    assert entry["metrics"] == {"test_accuracy": 0.97, "test_ece": 0.02}
    assert entry["gate"] == {"metric": "test_accuracy", "threshold": 0.95, "value": 0.97}
    assert run.headline["gate_passed"] == 1

    again = stage("release", PARAMS, release_inputs).check()
    assert again.digest("registry_entry") == run.digest("registry_entry")


def test_release_gate_refuses_below_threshold(stage: StageRunner, release_inputs: dict[str, Path]) -> None:
    run = stage("release", {**PARAMS, "threshold": 0.98}, release_inputs)
    assert run.returncode == 1
    assert not run.output("registry_entry").exists()
    assert "release gate failed: test_accuracy = 0.97 is below the threshold 0.98" in run.stderr
    assert "param threshold" in run.stderr
    assert run.headline["gate_passed"] == 0


def test_release_gate_accepts_value_equal_to_threshold(stage: StageRunner, release_inputs: dict[str, Path]) -> None:
    assert stage("release", {**PARAMS, "threshold": 0.97}, release_inputs).check().output("registry_entry").exists()


def test_release_gate_on_other_metric(stage: StageRunner, release_inputs: dict[str, Path]) -> None:
    run = stage("release", {**PARAMS, "metric": "test_ece", "threshold": 0.5}, release_inputs)
    assert run.returncode == 1 and "test_ece = 0.02 is below the threshold 0.5" in run.stderr


def test_release_rejects_unknown_metric(stage: StageRunner, release_inputs: dict[str, Path]) -> None:
    run = stage("release", {**PARAMS, "metric": "accuracy"}, release_inputs)
    assert run.returncode == 1
    assert "param metric 'accuracy' is not in the metrics input; available: test_accuracy, test_ece" in run.stderr


def test_release_rejects_calibration_of_another_model(
    stage: StageRunner, release_inputs: dict[str, Path], tmp_path: Path
) -> None:
    other = tmp_path / "other-model"
    other.write_bytes(b"a different model")
    run = stage("release", PARAMS, {**release_inputs, "model": other})
    assert run.returncode == 1
    assert f"not on the model being released ({sha256_file(other)})" in run.stderr
