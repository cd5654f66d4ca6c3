"""Every phase a pipeline, a run, a stage or a trial can be in, and what a phase means,
in one place: the run summaries, the engine, the status the operator writes, the board
and the terminal all read these, so a sweep's "finished" count or a stage's label can
never differ between ``kubectl get``, ``tycho show`` and the board."""

from __future__ import annotations

from typing import Literal, get_args

StagePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cached", "Skipped", "Cancelled", "Suspended"]
"""A stage of a run (and of the pipeline's status)."""
TrialPhase = Literal["Pending", "Running", "Succeeded", "Cached", "Failed", "Stopped", "Cancelled"]
"""One trial of a sweep; Stopped: its early-stopping rule ended it (it keeps its metrics)."""
RunPhase = Literal["Running", "Succeeded", "Failed", "Cancelled", "Superseded", "Lost"]
"""A run summary; Superseded: the spec changed mid-run; Lost: its local runner died."""
PipelinePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended", "Invalid"]
"""An ExperimentPipeline's ``status.phase``."""

STAGE_PHASES: tuple[StagePhase, ...] = get_args(StagePhase)
PIPELINE_PHASES: tuple[PipelinePhase, ...] = get_args(PipelinePhase)

RUN_FINISHED: tuple[RunPhase, ...] = ("Succeeded", "Failed", "Cancelled", "Superseded", "Lost")
"""A run summary that will not change any more (Lost: unless its runner comes back)."""
DONE: tuple[StagePhase, ...] = ("Succeeded", "Cached")
"""A stage whose outputs exist: it ran, or the cache served them."""
TRIAL_COMPLETE: tuple[TrialPhase, ...] = ("Succeeded", "Cached")
"""Trials whose objective counts for the pick."""
TRIAL_FINISHED: tuple[TrialPhase, ...] = ("Succeeded", "Cached", "Stopped", "Failed")
"""Trials that will not change any more: a sweep's ``n/m`` counts these."""

_LABELS = {"Cached": "cache hit", "Succeeded": "ran"}


def label(phase: str) -> str:
    """A stage's phase as people read it in a run's table: "cache hit", "ran", or the phase."""
    return _LABELS.get(phase, phase)
