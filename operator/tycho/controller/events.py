"""Kubernetes Events for what changed between two statuses of a pipeline: one per stage
transition (started, retrying, succeeded, cache hit, failed, ...) and per pipeline phase.

Pure: the operator posts what ``build`` returns, as ``manifest`` writes it (one poster
thread, in order, off the passes and the event loop), so ``kubectl describe xp NAME`` tells
the run's story. Messages carry names, keys and record URIs, never secret values (there
are none in a status to begin with).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from tycho.api import status as xp
from tycho.provenance import metrics as metrics_mod


@dataclasses.dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _stage_event(old: xp.StageStatus | None, new: xp.StageStatus) -> Event | None:
    before = old.phase if old is not None else "Pending"
    if before == new.phase:
        if new.phase == "Running" and old is not None and new.attempts > old.attempts:
            return Event("Warning", "StageRetrying", f"stage {new.name}: attempt {new.attempts} of Job {new.job_name} "
                                                     "(the previous attempt failed)")
        return None
    key = (new.cache_key or "")[:12]
    if new.phase == "Running":
        return Event("Normal", "StageStarted", f"stage {new.name}: Job {new.job_name} ({new.message}; key {key})")
    if new.phase == "Succeeded":
        metrics = metrics_mod.show(metrics_mod.headline(new.metrics))
        return Event("Normal", "StageSucceeded", f"stage {new.name} succeeded after {new.attempts} attempt(s)"
                     + (f": {metrics}" if metrics else "") + f"; record {new.provenance}")
    if new.phase == "Cached":
        return Event("Normal", "StageCached", f"stage {new.name}: cache hit {key}, outputs of record {new.provenance}")
    if new.phase == "Failed":
        return Event("Warning", "StageFailed", f"stage {new.name} failed: {new.message}")
    if new.phase == "Suspended":
        return Event("Normal", "StageSuspended", f"stage {new.name}: Job deleted, pipeline suspended")
    if new.phase == "Skipped":
        return Event("Normal", "StageSkipped", f"stage {new.name}: {new.message}")
    return None


def _pipeline_event(old: xp.Status, new: xp.Status) -> Event | None:
    if old.phase == new.phase:
        return None
    if new.phase == "Succeeded":
        return Event("Normal", "PipelineSucceeded", f"run {new.run_id}: {new.message}")
    if new.phase == "Failed":
        return Event("Warning", "PipelineFailed", f"run {new.run_id}: {new.message}")
    if new.phase == "Suspended":
        return Event("Normal", "PipelineSuspended", new.message)
    if new.phase == "Invalid":
        return Event("Warning", "InvalidManifest", new.message)
    if old.phase in ("Suspended", "Invalid") and new.phase in ("Running", "Pending"):
        return Event("Normal", "PipelineResumed", f"run {new.run_id} continues")
    return None


def _check_events(old: xp.StageStatus | None, new: xp.StageStatus) -> list[Event]:
    """A warning per check a stage newly reported (its codes, for kubectl describe)."""
    seen = {(c.code, c.message) for c in (old.checks if old is not None else [])}
    return [Event("Warning", "StageCheck", f"stage {new.name}: {c.code} ({c.severity}): {c.message}")
            for c in new.checks if (c.code, c.message) not in seen]


MESSAGE_CHARS = 1024
"""The longest message the API server keeps whole; a longer one keeps its start and end."""
COMPONENT = "tycho-operator"


def manifest(ref: Mapping[str, Any], event: Event, now: str, instance: str) -> dict[str, Any]:
    """The core/v1 Event about the object ``ref`` names (``tycho.kube.naming.object_ref``)."""
    meta = ref.get("metadata", {})
    message = event.message
    if len(message) > MESSAGE_CHARS:
        half = (MESSAGE_CHARS - 5) // 2
        message = f"{message[:half]} ... {message[-half:]}"
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"namespace": meta.get("namespace"), "generateName": f"{meta.get('name')}."},
            "involvedObject": {"apiVersion": ref.get("apiVersion"), "kind": ref.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "type": event.type, "reason": event.reason, "message": message, "action": event.reason,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": instance,
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": now, "count": 1}


def build(old: xp.Status, new: xp.Status) -> list[Event]:
    out: list[Event] = []
    if new.run_id and new.run_id != old.run_id:
        out.append(Event("Normal", "RunStarted", f"run {new.run_id} (generation {new.observed_generation})"))
    previous = {s.name: s for s in old.stages} if old.run_id == new.run_id else {}
    for stage in new.stages:
        event = _stage_event(previous.get(stage.name), stage)
        if event is not None:
            out.append(event)
        out += _check_events(previous.get(stage.name), stage)
    pipeline = _pipeline_event(old, new)
    if pipeline is not None:
        out.append(pipeline)
    return out
