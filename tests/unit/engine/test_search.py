"""A sweep's search is a pure function of its seed and the results of earlier batches."""

from __future__ import annotations

from typing import Any

from tycho.api import models
from tycho.engine import search


def sweep(**over: Any) -> models.Sweep:
    doc: dict[str, Any] = {"parameters": {"lr": {"low": 0.0003, "high": 0.03, "log": True},
                                          "bs": {"values": [32, 64, 128]}},
                           "algorithm": "tpe", "trials": 9, "parallelism": 3, "seed": 11,
                           "objective": {"metric": "val_accuracy", "goal": "maximize"}}
    doc.update(over)
    return models.Sweep.model_validate(doc)


def told(i: int, params: dict[str, Any], value: float, **kw: Any) -> search.Told:
    return search.Told(index=i, params=params, outcome=kw.pop("outcome", "complete"), value=value, **kw)


def test_batches_are_parallelism_sized_and_cover_every_trial() -> None:
    assert [list(b) for b in search.batches(sweep(trials=7, parallelism=3))] == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_batch_depends_on_earlier_results_not_on_their_order_or_on_the_trial_count() -> None:
    s = sweep()
    first = search.suggest(s, 0, [])
    assert first == search.suggest(sweep(trials=30), 0, []) and len(first) == 3
    history = [told(i, p, 0.5 + 0.1 * i) for i, p in enumerate(first)]
    second = search.suggest(s, 1, history)
    assert second == search.suggest(s, 1, list(reversed(history)))
    assert second != search.suggest(s, 1, [told(i, p, 0.9 - 0.1 * i) for i, p in enumerate(first)])
    assert all(0.0003 <= p["lr"] <= 0.03 and p["bs"] in (32, 64, 128) for p in first + second)


def test_grid_and_random_suggestions_are_seeded_sequences() -> None:
    grid = sweep(algorithm="grid", parameters={"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}},
                 trials=6, parallelism=4)
    points = search.suggest(grid, 0, []) + search.suggest(grid, 1, [])
    assert sorted((p["a"], p["b"]) for p in points) == sorted((a, b) for a in (1, 2) for b in "xyz")
    assert points == search.suggest(grid, 0, []) + search.suggest(grid, 1, [])
    other = sweep(algorithm="grid", parameters=grid.model_dump()["parameters"], trials=6, parallelism=4, seed=99)
    assert search.suggest(other, 0, []) != points[:4]


def test_the_median_rule_bars_come_from_earlier_trials_best_so_far() -> None:
    s = sweep(early_stopping={"rule": "median", "minSteps": 1})
    history = [told(0, {}, 0.5, intermediate={0: 0.1, 1: 0.5, 2: 0.4}),
               told(1, {}, 0.7, intermediate={0: 0.3, 1: 0.2, 2: 0.7}),
               told(2, {}, 0.9, intermediate={0: 0.2, 1: 0.9, 2: 0.9})]
    # best so far at step 1: 0.5, 0.3, 0.9 -> median 0.5; at step 2: 0.5, 0.7, 0.9 -> 0.7
    assert search.thresholds(s, history) == {1: 0.5, 2: 0.7}
    assert search.thresholds(sweep(), history) == {}  # no early stopping asked for


def test_the_best_trial_wins_and_ties_go_to_the_lower_index() -> None:
    trials = [told(0, {}, 0.9), told(1, {}, 0.95), told(2, {}, 0.95), told(3, {}, 0.99, outcome="pruned"),
              search.Told(index=4, params={}, outcome="failed")]
    assert search.best(sweep(), trials).index == 1  # type: ignore[union-attr]
    assert search.best(sweep(objective={"metric": "loss", "goal": "minimize"}), trials).index == 0  # type: ignore[union-attr]
    assert search.best(sweep(), trials[3:]) is None
