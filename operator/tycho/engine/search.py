"""A sweep's search: which params each trial gets, when a trial stops early, which wins.

Pure functions of the sweep spec and of results already known, so a parallel search is
reproducible: trials run in batches of ``parallelism``; batch k's params come from
Optuna's sampler seeded by (seed, k) and told the results of batches before k only, in
trial order — the order in which trials finish never matters. Early stopping compares a
trial against earlier batches only (``thresholds``). The suggestions are Optuna's (grid,
random and TPE samplers); this module only feeds them history and reads their answers.
Optuna is imported when a sweep is planned, not before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import statistics
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from tycho.api import models

if TYPE_CHECKING:
    import optuna

TrialOutcome = Literal["complete", "pruned", "failed"]


class Told(pydantic.BaseModel):
    """A finished trial, as the search sees it."""

    model_config = pydantic.ConfigDict(frozen=True)

    index: int
    params: dict[str, Any]
    outcome: TrialOutcome
    value: float | None = None
    """Its objective (the last value of the objective metric), when complete."""
    intermediate: dict[int, float] = {}
    """The objective metric by step, as reported while it ran."""


def batches(sweep: models.Sweep) -> list[range]:
    """Trial indices of each batch, in order."""
    p = sweep.parallelism
    return [range(start, min(start + p, sweep.trials)) for start in range(0, sweep.trials, p)]


def startup_trials(sweep: models.Sweep) -> int:
    """TPE suggests at random until this many trials finished: the first batch (at least 3),
    so a small sweep is not a random search in disguise (Optuna's default is 10)."""
    return max(sweep.parallelism, 3)


def _seed(seed: int, batch: int) -> int:
    return int(hashlib.sha256(f"tycho-sweep:{seed}:{batch}".encode()).hexdigest(), 16) % (2**31)


def _distributions(sweep: models.Sweep) -> dict[str, optuna.distributions.BaseDistribution]:
    from optuna import distributions

    out: dict[str, distributions.BaseDistribution] = {}
    for name, p in sorted(sweep.parameters.items()):
        if p.values is not None:
            out[name] = distributions.CategoricalDistribution(list(p.values))
        elif p.type == "int":
            out[name] = distributions.IntDistribution(int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            out[name] = distributions.FloatDistribution(float(p.low or 0), float(p.high or 0), log=p.log)
    return out


def _study(sweep: models.Sweep, sampler: optuna.samplers.BaseSampler, history: Sequence[Told]) -> optuna.Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=sweep.objective.goal, sampler=sampler)
    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
              "failed": optuna.trial.TrialState.FAIL}
    dists = _distributions(sweep)
    for told in sorted(history, key=lambda t: t.index):
        study.add_trial(optuna.trial.create_trial(
            params={k: v for k, v in told.params.items() if k in dists}, distributions=dists,
            value=told.value if told.outcome == "complete" else None, state=states[told.outcome],
            intermediate_values=dict(told.intermediate)))
    return study


def question(sweep: models.Sweep, batch: int, history: Sequence[Told]) -> str:
    """Everything a batch's suggestions depend on, as canonical JSON (a memo key)."""
    return json.dumps([sweep.model_dump(mode="json"), batch,
                       [t.model_dump(mode="json") for t in sorted(history, key=lambda t: t.index)]], sort_keys=True)


def suggest(sweep: models.Sweep, batch: int, history: Sequence[Told]) -> list[dict[str, Any]]:
    """The swept params of batch ``batch``'s trials, given the trials of earlier batches."""
    return answer(question(sweep, batch, history))


def answer(asked: str) -> list[dict[str, Any]]:
    """The suggestions for a ``question`` (how a stored memo is checked: recomputed)."""
    return [dict(p) for p in _suggest(asked)]


@functools.lru_cache(maxsize=256)
def _suggest(key: str) -> tuple[dict[str, Any], ...]:
    import optuna

    raw, batch, past = json.loads(key)
    sweep = models.Sweep.model_validate(raw)
    history = [Told.model_validate(t) for t in past]
    indices = batches(sweep)[batch]
    dists = _distributions(sweep)
    if sweep.algorithm in ("grid", "random"):
        # Independent of results: the seeded sampler's sequence, read up to this batch.
        if sweep.algorithm == "grid":
            space = {n: list(p.values or []) for n, p in sorted(sweep.parameters.items())}
            sampler: optuna.samplers.BaseSampler = optuna.samplers.GridSampler(space, seed=sweep.seed)
        else:
            sampler = optuna.samplers.RandomSampler(seed=sweep.seed)
        study = _study(sweep, sampler, [])
        asked = [study.ask(dists).params for _ in range(indices.stop)]
        return tuple(asked[i] for i in indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar is "experimental"
        sampler = optuna.samplers.TPESampler(seed=_seed(sweep.seed, batch), constant_liar=True,
                                             n_startup_trials=startup_trials(sweep))
    study = _study(sweep, sampler, history)
    return tuple(study.ask(dists).params for _ in indices)


def thresholds(sweep: models.Sweep, history: Sequence[Told]) -> dict[int, float]:
    """The median rule's bar per step, from the trials of earlier batches: the median of
    their best-so-far objective at that step (Optuna's MedianPruner rule). A trial whose
    best-so-far is worse than the bar at a step >= ``minSteps`` stops there. The bars go
    into the trial's invocation (and cache key), so the stage wrapper applies the rule
    where the trial runs and the decision is the same in every re-run."""
    if sweep.early_stopping is None:
        return {}
    better = max if sweep.objective.goal == "maximize" else min
    by_step: dict[int, list[float]] = {}
    for told in history:
        best_so_far: float | None = None
        for step in sorted(told.intermediate):
            value = told.intermediate[step]
            best_so_far = value if best_so_far is None else better(best_so_far, value)
            by_step.setdefault(step, []).append(best_so_far)
    return {step: statistics.median(values) for step, values in sorted(by_step.items())
            if step >= sweep.early_stopping.min_steps}


def best(sweep: models.Sweep, trials: Sequence[Told]) -> Told | None:
    """The winner: the best objective among complete trials, ties to the lower index."""
    complete = [t for t in trials if t.outcome == "complete" and t.value is not None and not math.isnan(t.value)]
    if not complete:
        return None
    sign = -1.0 if sweep.objective.goal == "maximize" else 1.0
    return min(complete, key=lambda t: (sign * float(t.value or 0.0), t.index))
