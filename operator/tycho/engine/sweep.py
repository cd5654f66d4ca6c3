"""A sweep stage within the one scheduler: its trials are stage executions, not a second loop.

Called by ``tycho.engine.scheduler`` for a stage with ``sweep:``, once its inputs are
known. Each trial is the stage with the swept params replaced: its own cache key (so a
trial that ran before is a cache hit, and raising ``trials`` runs only the new ones),
execution, record and outputs, started through the scheduler's ``unit`` like any stage,
at most ``parallelism`` at once. Batch k is suggested (``tycho.engine.search``) only when
every earlier batch has finished (for TPE and for early stopping, whose answers depend on
earlier results); grid and random search run without that barrier. When all trials have
finished, the best complete trial (ties: the lower index) gives the stage its outputs and
record, and the stage result says why (``selection``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tycho.api import models, phases
from tycho.engine import search
from tycho.planning import cachekey
from tycho.provenance import documents
from tycho.stage import invocation

if TYPE_CHECKING:
    from tycho.engine.scheduler import Pass

def _told(t: documents.TrialResult) -> search.Told:
    outcome: search.TrialOutcome = {"Stopped": "pruned", "Failed": "failed"}.get(t.phase, "complete")  # type: ignore[assignment]
    return search.Told(index=t.index, params=t.params, outcome=outcome, value=t.objective, intermediate=t.curve)


def _rule(sw: models.Sweep, history: list[search.Told]) -> invocation.StopRule | None:
    bars = search.thresholds(sw, history)
    return invocation.StopRule(metric=sw.objective.metric, goal=sw.objective.goal, thresholds=bars) if bars else None


def step(p: Pass, stage: models.Stage, prior: documents.StageResult, digests: dict[str, str], key: str,
         parts: dict[str, Any]) -> documents.StageResult:
    """The sweep stage's result now; trials to start go into the pass's plan."""
    sw = stage.sweep
    assert sw is not None
    earlier = {t.index: t for t in prior.trials or []}
    barrier = sw.algorithm == "tpe" or sw.early_stopping is not None
    running = sum(1 for e in p.obs.executions.values()
                  if e.stage == stage.name and e.trial is not None and e.phase == "Running" and not e.deleting)
    trials: list[documents.TrialResult] = []
    for batch, indices in enumerate(search.batches(sw)):
        if barrier and any(t.phase not in phases.TRIAL_FINISHED for t in trials):
            trials += [documents.TrialResult(index=i, params={}, message=f"waits for batch {batch} (trials "
                                             f"{indices.start - sw.parallelism}-{indices.start - 1}) to finish")
                       for i in indices]
            continue
        history = [_told(t) for t in trials] if barrier else []
        rule = _rule(sw, history)
        for i, swept in zip(indices, p.obs.suggest(sw, batch, history)):
            t, running = _trial(p, stage, i, swept, earlier.get(i), digests, rule, running)
            trials.append(t)
    base = documents.StageResult(name=stage.name, cache_key=key, key_components=parts,
                                 started_at=prior.started_at or p.obs.now, trials=trials,
                                 image=p.ctx.images.get(stage.name))
    done = [t for t in trials if t.phase in phases.TRIAL_FINISHED]
    if len(done) < len(trials):
        active = sum(t.phase == "Running" for t in trials)
        phase: phases.StagePhase = "Running" if active else prior.phase if prior.phase in (
            "Suspended", "Skipped") else "Pending"
        if phase == "Pending" and any(t.phase == "Cancelled" for t in trials):
            phase = "Cancelled"
        return base.model_copy(update={"phase": phase, "message": f"trials {len(done)}/{len(trials)} finished, "
                                                                  f"{active} running"})
    winner = search.best(sw, [_told(t) for t in trials])
    if winner is None:
        failed, stopped = sum(t.phase == "Failed" for t in trials), sum(t.phase == "Stopped" for t in trials)
        return base.model_copy(update={"phase": "Failed", "finished_at": p.obs.now, "message": (
            f"no trial completed with a value of {sw.objective.metric} ({failed} failed, {stopped} stopped early)")})
    best = trials[winner.index]
    complete = sum(t.phase in phases.TRIAL_COMPLETE for t in trials)
    word = "highest" if sw.objective.goal == "maximize" else "lowest"
    selection = documents.Selection(
        trial=best.index, metric=sw.objective.metric, goal=sw.objective.goal, value=float(best.objective or 0.0),
        reason=f"trial {best.index} has the {word} {sw.objective.metric} ({best.objective:.6g}) of {complete} "
               f"complete trials; ties go to the lower trial index")
    return base.model_copy(update={
        "phase": "Cached" if all(t.phase == "Cached" for t in trials) else "Succeeded",
        "cache_hit": all(t.phase == "Cached" for t in trials), "outputs": dict(best.outputs),
        "record": best.record, "metrics": dict(best.metrics), "selection": selection, "finished_at": p.obs.now,
        "checks": [c for t in trials for c in t.checks],
        "attempts": sum(t.attempts for t in trials), "message": selection.reason})


def _trial(p: Pass, stage: models.Stage, index: int, swept: dict[str, Any],
           prior: documents.TrialResult | None, digests: dict[str, str], rule: invocation.StopRule | None,
           running: int) -> tuple[documents.TrialResult, int]:
    """One trial's result, and how many of the sweep's trials now run."""
    sw = stage.sweep
    assert sw is not None
    unit = stage.model_copy(update={"params": {**stage.params, **swept}, "sweep": None})
    parts = cachekey.components(unit, p.ctx.image_parts[stage.name], p.ctx.code.digest, digests, trial_of=sw,
                                stop_rule=rule.model_dump(mode="json") if rule is not None else None)
    key = cachekey.key(parts)
    base = documents.TrialResult(index=index, params=swept, cache_key=key)
    if prior is not None and prior.cache_key == key and prior.phase in phases.TRIAL_FINISHED:
        return prior, running
    as_stage = documents.StageResult(name=stage.name, phase=prior.phase if prior and prior.phase in (
        "Running", "Pending") else "Pending", execution=prior.execution if prior else None,
        attempts=prior.attempts if prior else 0, started_at=prior.started_at if prior else None,
        message=prior.message if prior else "")
    started = len(p.plan.start)
    result, entry = p.unit(unit, key, parts, digests, as_stage, trial=index, objective=sw.objective.metric,
                           rule=rule, room=running < sw.parallelism)
    running += len(p.plan.start) - started
    phase: phases.TrialPhase = result.phase if result.phase in (
        "Pending", "Running", "Succeeded", "Cached", "Failed", "Cancelled") else "Pending"
    update: dict[str, Any] = {
        "phase": phase, "cache_hit": result.cache_hit, "execution": result.execution, "attempts": result.attempts,
        "started_at": result.started_at, "finished_at": result.finished_at, "message": result.message,
        "outputs": dict(result.outputs), "record": result.record, "metrics": dict(result.metrics),
        "objective": result.metrics.get(sw.objective.metric), "checks": list(result.checks)}
    if entry is not None:
        update["curve"] = dict(entry.curve or {})
        if entry.stopped is not None:
            bar = rule.thresholds.get(entry.stopped) if rule else None
            update.update(phase="Stopped", stopped_at=entry.stopped, objective=None, message=(
                f"stopped early at step {entry.stopped}: its best {sw.objective.metric} so far was worse than the "
                f"median of earlier batches ({bar:.6g})" if bar is not None
                else f"stopped early at step {entry.stopped}"))
    return base.model_copy(update=update), running
