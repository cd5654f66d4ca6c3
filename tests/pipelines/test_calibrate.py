"""Check TY-TEMPERATURE-BOUND of the calibrate stage: a temperature at a bound of its search is
reported with its code, not passed off as a fit. First on logits in-process (no TensorFlow), then
the stage itself on the real digits model of the ``pipeline`` chain, given a calibration split of
real images that the model classifies 100 % correctly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import numpy as np
import numpy.typing as npt
import pytest

from .digits_harness import StageRun, predicted_labels, run_stage

Importer = Callable[[str], ModuleType]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CODE = "TY-TEMPERATURE-BOUND"


def scores_of(scoring: ModuleType, logits: FloatArray, labels: IntArray, temperature: float) -> dict[str, float]:
    return {"temperature": temperature, "accuracy": scoring.accuracy(logits, labels),
            "nll_before": scoring.nll(logits, labels), "nll_after": scoring.nll(logits, labels, temperature)}


def noisy_logits(rng: np.random.Generator, boost: float, n: int = 300) -> FloatArray:
    logits = rng.normal(size=(n, 10))
    logits[np.arange(n), rng.integers(0, 10, n)] += boost
    return logits


@pytest.mark.parametrize("boost", [1.0, 20.0])
def test_logits_classified_all_correctly_put_the_temperature_at_the_lower_bound(digits: Importer,
                                                                                boost: float) -> None:
    # boost 1: small logit gaps, the search runs to 0.05; boost 20: the NLL is exactly 0.0 in
    # float64 from T ~ 0.4 down, and the search stops somewhere on that floor.
    calibrate, scoring = digits("calibrate"), digits("scoring")
    logits = noisy_logits(np.random.default_rng(1), boost)
    labels = logits.argmax(axis=1)
    temperature, _, _ = calibrate.fit_temperature(logits, labels, 200)

    reached = calibrate.bound_reached(logits, labels, temperature)
    check = calibrate.bound_check(reached, scores_of(scoring, logits, labels, temperature), len(labels), "warn")

    assert reached == ("lower", 0.05)
    assert check["code"] == CODE and check["severity"] == "warn"
    assert check["details"] == {"bound": 0.05, "side": "lower", "temperature": temperature,
                                "calibration_accuracy": 1.0, "samples": 300, "param": "temperature_bound",
                                "nll_before": scoring.nll(logits, labels),
                                "nll_after": scoring.nll(logits, labels, temperature)}
    assert "lower bound 0.05" in check["message"] and "100.0% of the 300 calibration samples" in check["message"]


def test_logits_classified_all_wrongly_put_it_at_the_upper_bound(digits: Importer) -> None:
    calibrate, scoring = digits("calibrate"), digits("scoring")
    logits = noisy_logits(np.random.default_rng(2), 2.0)
    labels = (logits.argmax(axis=1) + 1) % 10
    temperature, _, _ = calibrate.fit_temperature(logits, labels, 200)
    reached = calibrate.bound_reached(logits, labels, temperature)
    check = calibrate.bound_check(reached, scores_of(scoring, logits, labels, temperature), len(labels), "fail")
    assert reached == ("upper", 20.0)
    assert check["severity"] == "fail" and check["details"]["calibration_accuracy"] == 0.0
    assert "param temperature_bound: warn or off to accept it" in check["message"]


def test_a_temperature_fitted_inside_its_bounds_raises_nothing(digits: Importer) -> None:
    calibrate, scoring = digits("calibrate"), digits("scoring")
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(2000, 10))
    z = logits / 2.0  # labels drawn from softmax(logits / 2): the logits are overconfident by a factor 2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in p])
    temperature, _, _ = calibrate.fit_temperature(logits, labels, 200)
    assert calibrate.bound_reached(logits, labels, temperature) is None
    assert calibrate.bound_check(None, scores_of(scoring, logits, labels, temperature), 2000, "fail") is None


def test_level_off_reports_nothing_even_at_a_bound(digits: Importer) -> None:
    calibrate = digits("calibrate")
    scores = {"temperature": 0.05, "accuracy": 1.0, "nll_before": 0.1, "nll_after": 0.0}
    assert calibrate.bound_check(("lower", 0.05), scores, 10, "off") is None


# ---- the stage, on the real model -----------------------------------------------------------

@pytest.fixture(scope="module")
def perfect_splits(pipeline: dict[str, StageRun], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chain's splits with the calibration labels set to what the tuned model predicts: real
    images, a real model, and a calibration split it classifies 100 % correctly."""
    directory = tmp_path_factory.mktemp("perfect-calibration")
    splits = pipeline["split"].output("splits")
    labels = predicted_labels(pipeline["tune"].output("model"), splits, "calib", directory)
    with np.load(splits) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    assert (arrays["y_calib"] != np.asarray(labels)).any()  # two epochs: the real labels are not all right
    arrays["y_calib"] = np.asarray(labels, dtype=arrays["y_calib"].dtype)
    path = directory / "splits.npz"
    np.savez(path, **arrays)
    return path


def calibrate_on(root: Path, name: str, pipeline: dict[str, StageRun], splits: Path,
                 params: dict[str, Any]) -> StageRun:
    return run_stage(root / name, "calibrate", {"max_iterations": 200, **params},
                     {"splits": splits, "model": pipeline["tune"].output("model")})


@pytest.fixture(scope="module")
def warned(pipeline: dict[str, StageRun], perfect_splits: Path, tmp_path_factory: pytest.TempPathFactory) -> StageRun:
    return calibrate_on(tmp_path_factory.mktemp("warned"), "calibrate", pipeline, perfect_splits, {}).check()


@pytest.mark.slow
def test_a_split_the_model_gets_all_right_warns_by_default_with_the_fit_in_its_details(warned: StageRun) -> None:
    calibration = warned.json("calibration")
    check = warned.checks[CODE]
    assert check["severity"] == "warn"
    assert check["details"]["bound"] == 0.05 and check["details"]["side"] == "lower"
    assert check["details"]["calibration_accuracy"] == calibration["accuracy"] == 1.0
    for key in ("temperature", "nll_before", "nll_after"):
        assert check["details"][key] == calibration[key], key
    assert calibration["nll_after"] < calibration["nll_before"]
    assert calibration["checks"] == [check]  # kept for the evaluation report
    assert warned.headline["check_temperature_bound"] == 1


@pytest.mark.slow
def test_level_fail_fails_the_stage_and_writes_nothing(pipeline: dict[str, StageRun], perfect_splits: Path,
                                                       tmp_path: Path) -> None:
    failed = calibrate_on(tmp_path, "failed", pipeline, perfect_splits, {"temperature_bound": "fail"})
    assert failed.returncode == 1
    assert failed.checks[CODE]["severity"] == "fail"
    assert list(failed.outputs.iterdir()) == []


@pytest.mark.slow
def test_level_off_and_a_bad_level(pipeline: dict[str, StageRun], perfect_splits: Path, tmp_path: Path) -> None:
    quiet = calibrate_on(tmp_path, "off", pipeline, perfect_splits, {"temperature_bound": "off"}).check()
    assert quiet.checks == {} and quiet.json("calibration")["checks"] == []
    bad = calibrate_on(tmp_path, "bad", pipeline, perfect_splits, {"temperature_bound": "loud"})
    assert bad.returncode == 1 and "param 'temperature_bound' must be one of fail, warn, off" in bad.stderr


@pytest.mark.slow
def test_a_normal_calibration_split_raises_nothing(pipeline: dict[str, StageRun]) -> None:
    calibrate = pipeline["calibrate"]
    calibration = calibrate.json("calibration")
    assert calibrate.checks == {} and calibration["checks"] == []
    assert 0.05 < calibration["temperature"] < 20 and calibration["bounds"] == [0.05, 20.0]
    assert calibrate.headline["check_temperature_bound"] == 0


@pytest.mark.slow
def test_the_evaluation_report_shows_what_calibrate_reported(pipeline: dict[str, StageRun], warned: StageRun,
                                                             tmp_path: Path) -> None:
    inputs = {"splits": pipeline["split"].output("splits"), "baseline": pipeline["train"].output("model"),
              "tuned": pipeline["tune"].output("model"), "calibration": warned.output("calibration")}
    report = run_stage(tmp_path / "evaluate", "evaluate", {"bins": 10}, inputs).check()

    def calibration_cell(run: StageRun) -> str:
        nb = nbformat.reads(run.output("report_ipynb").read_text(encoding="utf-8"), as_version=4)  # type: ignore[no-untyped-call]
        cell = next(c for c in nb.cells if c.id == "calibration")
        return "".join(o["data"]["text/markdown"] for o in cell.outputs if "text/markdown" in o.get("data", {}))

    assert f"**warn** `{CODE}`: the NLL is lowest at the lower bound 0.05" in calibration_cell(report)
    assert CODE in report.output("report_html").read_text(encoding="utf-8")
    normal = calibration_cell(pipeline["evaluate"])
    assert "`calibrate` reported no checks." in normal and CODE not in normal
