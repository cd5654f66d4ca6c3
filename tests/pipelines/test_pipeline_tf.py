"""The TensorFlow stages (train, a tune trial, calibrate, evaluate) and release, chained on the real
digits with tiny budgets (fixture ``pipeline``, digits_chain.py), plus byte-for-byte
reproducibility across processes. The tune sweep itself (trials, selection) is the engine's:
tests/e2e runs it."""

from __future__ import annotations

import json
import zipfile

import nbformat
import numpy as np
import pytest

from .digits_chain import EVALUATE_OUTPUTS, TRAIN
from .digits_harness import StageRun, StageRunner, sha256_file

pytestmark = pytest.mark.slow


def test_train_writes_model_history_and_curves(pipeline: dict[str, StageRun]) -> None:
    train = pipeline["train"]
    history = train.json("history")
    assert [row["epoch"] for row in history["epochs"]] == [1, 2]
    curves = [line for line in train.metrics if "step" in line]
    assert [line["step"] for line in curves] == [1, 2]
    assert all(set(line) == {"step", "loss", "accuracy", "val_loss", "val_accuracy"} for line in curves)
    assert train.headline["val_accuracy"] == history["final"]["val_accuracy"] == curves[-1]["val_accuracy"]

    with zipfile.ZipFile(train.output("model")) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("format.json"))
        architecture = json.loads(zf.read("model.json"))
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    weights = [n for n in names if n.startswith("weights/")]
    assert len(weights) == len(manifest["weights"]) > 0
    layer_names = [layer["config"]["name"] for layer in architecture["config"]["layers"]]
    assert layer_names[1:4] == ["conv1", "conv2", "pool1"]
    conv1 = next(layer for layer in architecture["config"]["layers"] if layer["config"]["name"] == "conv1")
    assert conv1["config"]["filters"] == TRAIN["filters"]


def test_train_is_bit_identical_in_a_new_process(pipeline: dict[str, StageRun]) -> None:
    again = pipeline["train_again"]
    assert again.digest("model") == pipeline["train"].digest("model")
    assert again.digest("history") == pipeline["train"].digest("history")


def test_train_can_run_without_op_determinism(pipeline: dict[str, StageRun]) -> None:
    history = pipeline["train_nondeterministic"].json("history")
    assert history["deterministic"] is False
    assert len(history["epochs"]) == 1


def test_a_tune_trial_trains_like_train_with_its_own_params(pipeline: dict[str, StageRun]) -> None:
    train, tune = pipeline["train"], pipeline["tune"]
    assert tune.digest("model") != train.digest("model")  # other params, other weights
    assert "val_accuracy" in tune.headline and 0.0 <= tune.headline["val_accuracy"] <= 1.0


def test_calibration_lowers_nll_and_names_its_inputs(pipeline: dict[str, StageRun]) -> None:
    calibration = pipeline["calibrate"].json("calibration")
    assert calibration["temperature"] > 0
    assert calibration["nll_after"] <= calibration["nll_before"] + 1e-12
    assert calibration["inputs"] == {
        "model": pipeline["tune"].digest("model"),
        "splits": pipeline["split"].digest("splits"),
    }
    with np.load(pipeline["split"].output("splits")) as splits:
        assert calibration["samples"] == len(splits["y_calib"])


def test_evaluate_report_outputs(pipeline: dict[str, StageRun]) -> None:
    evaluate = pipeline["evaluate"]
    for name in ("confusion_matrix", "reliability_diagram"):
        assert evaluate.output(name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = evaluate.json("metrics")
    with np.load(pipeline["split"].output("splits")) as splits:
        assert metrics["test_samples"] == len(splits["y_test"])
    assert metrics["temperature"] == pipeline["calibrate"].json("calibration")["temperature"]
    # Two epochs are enough to beat chance (0.1) by far; a model rebuilt with wrong
    # weights would not.
    assert metrics["test_accuracy"] > 0.3
    assert evaluate.headline["test_accuracy"] == metrics["test_accuracy"]

    text = evaluate.output("report_ipynb").read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    for volatile in ("start_time", "end_time", "duration", "iopub.", "/tmp", "input_path", "output_path"):
        assert volatile not in text, volatile
    injected = next(cell for cell in nb.cells if cell.id == "injected-parameters")
    assert "bins = 10" in injected.source
    outputs = {o.output_type for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs}
    assert "display_data" in outputs and "error" not in outputs

    html = evaluate.output("report_html").read_text(encoding="utf-8")
    assert "<title>Digits evaluation report</title>" in html
    assert "data:image/png;base64," in html


def test_evaluate_is_bit_identical_in_a_new_process(pipeline: dict[str, StageRun]) -> None:
    again = pipeline["evaluate_again"]
    for name in EVALUATE_OUTPUTS:
        assert again.digest(name) == pipeline["evaluate"].digest(name), name


def test_release_gate_end_to_end(pipeline: dict[str, StageRun], stage: StageRunner) -> None:
    inputs = {
        "model": pipeline["tune"].output("model"),
        "calibration": pipeline["calibrate"].output("calibration"),
        "metrics": pipeline["evaluate"].output("metrics"),
    }
    accuracy = pipeline["evaluate"].json("metrics")["test_accuracy"]
    passed = stage(
        "release", {"metric": "test_accuracy", "threshold": accuracy, "model_name": "digits-cnn"}, inputs
    ).check()
    assert passed.json("registry_entry")["version"] == "1.0.0+" + sha256_file(inputs["model"])[:12]

    refused = stage(
        "release", {"metric": "test_accuracy", "threshold": accuracy + 0.001, "model_name": "digits-cnn"}, inputs
    )
    assert refused.returncode == 1
    assert not refused.output("registry_entry").exists()
    assert "release gate failed: test_accuracy" in refused.stderr
