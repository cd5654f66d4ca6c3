"""The TensorFlow stages of the digits pipeline chained on the real data with tiny budgets:
split, train, one tune trial, calibrate, evaluate, and the reruns that check reproducibility.

conftest.py runs the chain once per session (fixture ``pipeline``); test_pipeline_tf.py and
test_calibrate.py read its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .digits_harness import StageRun, run_stage

SPLIT = {"buckets": 10, "leakage": "fail", "imbalance": "warn", "unnormalised": "warn", "constant": "warn"}
TRAIN = {"seed": 7, "epochs": 2, "batch_size": 64, "learning_rate": 0.003, "kernel_size": 3, "filters": 8}
TUNE = {**TRAIN, "seed": 11, "learning_rate": 0.01, "kernel_size": 5}  # one trial of the sweep
EVALUATE_OUTPUTS = ("report_ipynb", "report_html", "confusion_matrix", "reliability_diagram", "metrics")


def run_chain(root: Path, dataset: Path) -> dict[str, StageRun]:
    """Every stage run the tests look at, including the reruns that check reproducibility.

    Runs go two at a time (the machine has two cores and each run spends seconds importing
    TensorFlow). Every run is submitted after the runs it reads from, so a worker waiting
    on a dependency always waits on one that is already running or done.
    """
    split = run_stage(root / "split", "split", SPLIT, {"dataset": dataset}).check()
    splits = split.output("splits")

    def run(name: str, stage: str, params: dict[str, Any], inputs: Callable[[], dict[str, Path]]) -> StageRun:
        return run_stage(root / name, stage, params, inputs()).check()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: dict[str, Future[StageRun]] = {}

        def output(name: str, output_name: str) -> Path:
            return futures[name].result().output(output_name)

        def submit(name: str, stage: str, params: dict[str, Any], inputs: Callable[[], dict[str, Path]]) -> None:
            futures[name] = pool.submit(run, name, stage, params, inputs)

        submit("train", "train", TRAIN, lambda: {"splits": splits})
        submit("tune", "train", TUNE, lambda: {"splits": splits})
        submit(
            "calibrate",
            "calibrate",
            {"max_iterations": 200},
            lambda: {"splits": splits, "model": output("tune", "model")},
        )
        submit("train_again", "train", TRAIN, lambda: {"splits": splits})

        def evaluate_inputs() -> dict[str, Path]:
            return {
                "splits": splits,
                "baseline": output("train", "model"),
                "tuned": output("tune", "model"),
                "calibration": output("calibrate", "calibration"),
            }

        submit("evaluate", "evaluate", {"bins": 10}, evaluate_inputs)
        submit(
            "train_nondeterministic",
            "train",
            {**TRAIN, "epochs": 1, "deterministic": False},
            lambda: {"splits": splits},
        )
        submit("evaluate_again", "evaluate", {"bins": 10}, evaluate_inputs)
        return {"split": split, **{name: future.result() for name, future in futures.items()}}
