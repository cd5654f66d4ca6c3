"""The pipeline's status subresource: phase, progress, headline metric, conditions.

Pure: the engine decides the stage results; this module shows them as the status
(``stage_status``) and derives everything the pipeline-level status says from them,
keeping each condition's ``lastTransitionTime`` unless its status actually changed
(what ``kubectl wait --for=condition=Ready`` and dashboards rely on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic

from tycho.api import phases, problems, status as xp
from tycho.provenance import documents, layout, metrics as metrics_mod


def parse(raw: Mapping[str, Any] | None) -> xp.Status:
    """The status as stored; anything unreadable counts as no status (it is rebuilt)."""
    try:
        return xp.Status.model_validate(dict(raw or {}))
    except pydantic.ValidationError:
        return xp.Status()


def dump(status: xp.Status) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def progress(stages: Sequence[xp.StageStatus]) -> str:
    return f"{sum(s.phase in phases.DONE for s in stages)}/{len(stages)}"


def headline(stages: Sequence[xp.StageStatus]) -> str:
    """The pipeline's most telling metric, e.g. ``test_accuracy=0.97`` (``provenance.metrics``)."""
    best = metrics_mod.pipeline_headline([s.metrics for s in stages if s.phase in phases.DONE])
    return f"{best[0]}={best[1]:.4g}" if best else ""


def stage_status(result: documents.StageResult, store_url: str) -> xp.StageStatus:
    """A stage result as the status shows it (absolute URIs, for people to follow)."""
    return xp.StageStatus(
        name=result.name, phase=result.phase, attempts=result.attempts, started_at=result.started_at,
        finished_at=result.finished_at, cache_key=result.cache_key, cache_hit=result.cache_hit,
        job_name=result.execution,
        outputs=[xp.OutputStatus(name=n, sha256=d, uri=f"{store_url}/{layout.object_rel(d)}")
                 for n, d in sorted(result.outputs.items())],
        provenance=f"{store_url}/{result.record}" if result.record else None,
        metrics=dict(result.metrics), message=result.message, sweep=_sweep(result),
        checks=[xp.CheckStatus(code=c.code, severity=c.severity, message=c.message) for c in result.checks])


def _sweep(result: documents.StageResult) -> xp.SweepStatus | None:
    if result.trials is None:
        return None
    pick = result.selection
    return xp.SweepStatus(
        trials=len(result.trials), finished=sum(t.phase in phases.TRIAL_FINISHED for t in result.trials),
        running=sum(t.phase == "Running" for t in result.trials), best=pick.trial if pick else None,
        objective=pick.metric if pick else "", value=pick.value if pick else None, reason=pick.reason if pick else "",
        items=[xp.TrialStatus(index=t.index, phase=t.phase, params=t.params, objective=t.objective,
                                  job_name=t.execution, message=t.message) for t in result.trials])


def sweeps(stages: Sequence[xp.StageStatus]) -> str:
    """``tune 5/12``: the trials of each sweep that have finished."""
    return ", ".join(f"{s.name} {s.sweep.finished}/{s.sweep.trials}" for s in stages if s.sweep is not None)


def phase(stages: Sequence[xp.StageStatus], suspended: bool) -> phases.PipelinePhase:
    seen = {s.phase for s in stages}
    if stages and seen <= set(phases.DONE):
        return "Succeeded"
    if "Failed" in seen and "Running" not in seen:
        return "Failed"
    if suspended:
        return "Suspended"
    if "Running" in seen or seen & set(phases.DONE):
        return "Running"
    return "Pending"


def _message(stages: Sequence[xp.StageStatus], current: phases.PipelinePhase) -> str:
    failed = [s for s in stages if s.phase == "Failed"]
    if failed:
        first = failed[0]
        return f"stage {first.name} failed: {first.message}"
    if current == "Succeeded":
        hits = sum(s.phase == "Cached" for s in stages)
        return f"all {len(stages)} stages done ({hits} cache hits, {len(stages) - hits} executed)"
    if current == "Suspended":
        return "suspended: no new stage Jobs; running Jobs were deleted; set spec.suspend=false to resume"
    running = [s.name for s in stages if s.phase == "Running"]
    return ("running: " + ", ".join(running)) if running else ""


def set_condition(conditions: list[xp.Condition], kind: str, state: bool, reason: str, message: str,
                  generation: int | None, now: str) -> list[xp.Condition]:
    """Replace one condition; its transition time moves only when its status flips."""
    value: Literal["True", "False"] = "True" if state else "False"
    old = next((c for c in conditions if c.type == kind), None)
    since = old.last_transition_time if old is not None and old.status == value and old.last_transition_time else now
    new = xp.Condition(type=kind, status=value, reason=reason, message=message,
                           last_transition_time=since, observed_generation=generation)
    return [c for c in conditions if c.type != kind] + [new]


def build(prior: xp.Status, *, stages: list[xp.StageStatus], run_id: str, spec_digest: str,
          generation: int | None, suspended: bool, now: str) -> xp.Status:
    """The status of a valid pipeline given its stages' statuses."""
    current = phase(stages, suspended)
    message = _message(stages, current)
    failed = [s.name for s in stages if s.phase == "Failed"]
    conds = list(prior.conditions)
    conds = set_condition(conds, "Valid", True, "Validated", "", generation, now)
    conds = set_condition(conds, "Ready", current == "Succeeded", current, message if current == "Succeeded" else "",
                          generation, now)
    conds = set_condition(conds, "Progressing", current in ("Running", "Pending"),
                          "StagesRunning" if current in ("Running", "Pending") else current,
                          message if current in ("Running", "Pending") else "", generation, now)
    conds = set_condition(conds, "Degraded", bool(failed), "StageFailed" if failed else "AsExpected",
                          message if failed else "", generation, now)
    return xp.Status(phase=current, progress=progress(stages), headline=headline(stages) or prior.headline,
                         sweeps=sweeps(stages),
                         run_id=run_id, spec_digest=spec_digest, observed_generation=generation, stages=stages,
                         conditions=_ordered(conds), message=message)


def invalid(prior: xp.Status, problems: Sequence[problems.Problem], generation: int | None,
            now: str) -> xp.Status:
    """Status of a manifest the planner must not touch: every problem with its field path."""
    message = "; ".join(str(p) for p in problems)
    conds = set_condition(list(prior.conditions), "Valid", False, "InvalidManifest", message, generation, now)
    conds = set_condition(conds, "Ready", False, "Invalid", "", generation, now)
    conds = set_condition(conds, "Progressing", False, "Invalid", "", generation, now)
    conds = set_condition(conds, "Degraded", True, "InvalidManifest", message, generation, now)
    return xp.Status(phase="Invalid", progress=prior.progress, headline=prior.headline, run_id=prior.run_id,
                         spec_digest=prior.spec_digest,
                         observed_generation=generation, stages=prior.stages, conditions=_ordered(conds),
                         message=f"invalid manifest, nothing runs: {message}")


def _ordered(conds: list[xp.Condition]) -> list[xp.Condition]:
    order = {"Ready": 0, "Progressing": 1, "Degraded": 2, "Valid": 3}
    return sorted(conds, key=lambda c: order.get(c.type, 9))
