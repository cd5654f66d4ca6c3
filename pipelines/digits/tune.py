"""Stage `tune`: seeded random search over learning_rate x batch_size x kernel_size.

Params learning_rate, batch_size and kernel_size are lists; their product is the grid and
`trials` distinct points are drawn from it with NumPy's generator seeded by `seed`. Each
trial trains a fresh model through train.fit with its own seed derived from (seed, trial
index), so a trial's result does not depend on which trials ran before it.

The best trial has the highest final validation accuracy; ties go to the lower
validation loss, then to the earlier trial. Its trained model is the `model` output
(no retraining: the selected weights are exactly the ones that were scored).
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from typing import Any

import numpy as np

from common import Contract, StageError, append_metrics, read_npz, run_stage, warn, write_bytes, write_json
from model_io import configure_tensorflow, model_bytes
from train import Splits, TrainConfig, fit

SEARCH_PARAMS = ("batch_size", "kernel_size", "learning_rate")


def trial_seed(seed: int, index: int) -> int:
    """A well-mixed 31-bit seed per trial, so neighbouring trials do not share RNG streams."""
    return int(hashlib.sha256(f"tune:{seed}:{index}".encode()).hexdigest(), 16) % (2**31)


def search_space(contract: Contract) -> list[dict[str, Any]]:
    """Grid points in a fixed order (params sorted by name, values in the order given)."""
    values: dict[str, list[Any]] = {}
    for name in SEARCH_PARAMS:
        raw = contract.required_param(name)
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise StageError(f"param {name} must list at least one value")
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise StageError(f"param {name} must hold numbers, got {item!r}")
        values[name] = items
    return [dict(zip(SEARCH_PARAMS, combo)) for combo in itertools.product(*(values[n] for n in SEARCH_PARAMS))]


def draw_trials(grid: list[dict[str, Any]], trials: int, seed: int) -> list[dict[str, Any]]:
    if trials < 1:
        raise StageError(f"param trials must be >= 1, got {trials}")
    if trials > len(grid):
        warn(f"param trials={trials} exceeds the {len(grid)} points of the search space; running each point once")
        trials = len(grid)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(grid), size=trials, replace=False)
    return [grid[int(i)] for i in picks]


def better(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Is trial a better than trial b? Higher val_accuracy, then lower val_loss, then lower index."""
    return (-a["val_accuracy"], a["val_loss"], a["index"]) < (-b["val_accuracy"], b["val_loss"], b["index"])


def main(contract: Contract) -> None:
    seed = contract.param("seed", 11)
    n_trials = contract.param("trials", 4)
    epochs = contract.param("epochs", 30)
    filters = contract.param("filters", 16)
    deterministic = contract.param("deterministic", True)
    points = draw_trials(search_space(contract), n_trials, seed)

    configure_tensorflow(seed, deterministic)
    splits = Splits.load(read_npz(contract.input("splits")))

    results: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_bytes = b""
    for index, point in enumerate(points):
        config = TrainConfig(
            seed=trial_seed(seed, index),
            epochs=epochs,
            batch_size=int(point["batch_size"]),
            learning_rate=float(point["learning_rate"]),
            kernel_size=int(point["kernel_size"]),
            filters=filters,
        )
        started = time.perf_counter()
        model, curves = fit(config, splits)
        final = curves[-1]
        result = {
            "index": index,
            "seed": config.seed,
            "params": {"batch_size": config.batch_size, "kernel_size": config.kernel_size, "learning_rate": config.learning_rate},
            **final,
            "val_accuracy_curve": [row["val_accuracy"] for row in curves],
        }
        results.append(result)
        append_metrics(contract, {"trial_val_accuracy": final["val_accuracy"], "trial_val_loss": final["val_loss"]}, step=index)
        print(
            f"tune: trial {index} {result['params']} val_accuracy {final['val_accuracy']:.4f} "
            f"({time.perf_counter() - started:.1f}s)",
            file=sys.stderr,
        )
        if best is None or better(result, best):
            best, best_bytes = result, model_bytes(model)

    assert best is not None
    write_bytes(contract.output("model"), best_bytes)
    write_json(
        contract.output("best_params"),
        {**best["params"], "epochs": epochs, "filters": filters, "seed": best["seed"], "trial": best["index"]},
    )
    write_json(
        contract.output("trials"),
        {"search": {"seed": seed, "trials": len(points), "epochs": epochs, "filters": filters}, "trials": results, "best": best["index"]},
    )
    append_metrics(
        contract,
        {"best_trial": best["index"], "val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"], "trials": len(points)},
    )


if __name__ == "__main__":
    run_stage(main)
