"""Reads what happened to a stage Job: its phase, attempts, times, and for a failed Job the
reason in words (Job condition plus the last pod's termination state).

Pure functions over Job and Pod dicts as the API server returns them; called by the
Kubernetes executor and by the Job informer (``fingerprint``, to ignore Job updates that
change nothing the operator reports; ``essentials``, what the operator keeps of a Job).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tycho.kube import jobs, naming

MESSAGE_CHARS = 1200


@dataclasses.dataclass(frozen=True)
class JobState:
    phase: Literal["Running", "Succeeded", "Failed"]
    """Running also covers "created, no pod yet" and "waiting to retry"."""
    attempts: int
    started: str | None
    finished: str | None
    reason: str = ""
    message: str = ""


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    conditions: list[Mapping[str, Any]] = job.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None)


def job_state(job: Mapping[str, Any]) -> JobState:
    status = job.get("status") or {}
    attempts = max(1, sum(int(status.get(k) or 0) for k in ("failed", "succeeded", "active")))
    started = status.get("startTime") or job.get("metadata", {}).get("creationTimestamp")
    done = _condition(job, "Complete")
    if done is not None:
        return JobState("Succeeded", attempts, started, status.get("completionTime") or done.get("lastTransitionTime"))
    failed = _condition(job, "Failed")
    if failed is not None:
        return JobState("Failed", attempts, started, failed.get("lastTransitionTime"),
                        failed.get("reason") or "Failed", failed.get("message") or "")
    return JobState("Running", attempts, started, None)


def is_deleting(job: Mapping[str, Any]) -> bool:
    return bool(job.get("metadata", {}).get("deletionTimestamp"))


def run_of(job: Mapping[str, Any]) -> str:
    """The run a Job was created for (full id from the annotation; label as a fallback)."""
    meta = job.get("metadata", {})
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return str(annotations.get(naming.ANNOTATION_RUN) or labels.get(naming.LABEL_RUN, ""))


def fingerprint(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the engine decides on and the status reports of a Job: its phase, attempts and
    deletion. Updates that keep it equal need no reconcile (a Job's status changes several
    times per attempt: pod active, ready, success criteria met, complete)."""
    state = job_state(job)
    return (state.phase, state.attempts, is_deleting(job))


JOB_META = ("name", "namespace", "uid", "ownerReferences", "creationTimestamp", "deletionTimestamp")
JOB_STATUS = ("active", "failed", "succeeded", "startTime", "completionTime")
JOB_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")


def essentials(job: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator reads of a Job, and nothing more: the tycho labels and annotations,
    owner, times, counts, the Complete/Failed condition and the stage's image. Every function
    of this module reads the result as it reads the whole Job. The operator holds one per
    stage Job for as long as the Job exists (thousands), so it is kept small."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    out_meta = {k: meta[k] for k in JOB_META if meta.get(k) is not None}
    out_meta["labels"], out_meta["annotations"] = naming.ours(meta.get("labels")), naming.ours(meta.get("annotations"))
    out_status: dict[str, Any] = {k: status[k] for k in JOB_STATUS if k in status}
    if ended := [{k: c[k] for k in JOB_CONDITION if k in c} for c in status.get("conditions") or []
                 if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]:
        out_status["conditions"] = ended
    pod = job.get("spec", {}).get("template", {}).get("spec", {})
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    stage = [c for c in containers if c.get("name") == "stage"] or containers[:1]
    return {"apiVersion": job.get("apiVersion"), "kind": job.get("kind"), "metadata": out_meta, "status": out_status,
            "spec": {"template": {"spec": {"containers": [{"image": c.get("image")} for c in stage[:1]]}}}}


CREATED = ("Running", 1, False)
"""The fingerprint of a Job that was just created: the reconcile that created it counted
it as running already, so its first sight needs no reconcile of its own."""


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Init containers first (fetch, stage), then the publishing container."""
    status = pod.get("status", {})
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _stage_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((cs for cs in _statuses(pod) if cs.get("name") == jobs.CONTAINER), {})


def _failed_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The container whose end failed the pod (the first that exited non-zero)."""
    for cs in _statuses(pod):
        term = (cs.get("state") or {}).get("terminated") or {}
        if term and term.get("exitCode") not in (0, None):
            return cs
    return _stage_container(pod)


def _newest(pods: Sequence[Mapping[str, Any]], phase: str) -> Mapping[str, Any] | None:
    chosen = [p for p in pods if p.get("status", {}).get("phase") == phase]
    chosen.sort(key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")))
    return chosen[-1] if chosen else None


def image_digest(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The image the node actually ran (``containerStatuses[].imageID``), as reported."""
    pod = _newest(pods, "Succeeded") or _newest(pods, "Running") or _newest(pods, "Failed")
    if pod is None:
        return None
    image_id = _stage_container(pod).get("imageID")
    return str(image_id) if image_id else None


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_CHARS else "…" + text[-MESSAGE_CHARS:]


def failure_message(state: JobState, pods: Sequence[Mapping[str, Any]]) -> str:
    """Why a Job failed, in words: Job condition, then the last attempt's pod and container."""
    parts = [f"{state.reason}: {state.message}".rstrip(": ") if state.reason else "the Job failed"]
    pod = _newest(pods, "Failed")
    if pod is not None:
        pstat = pod.get("status", {})
        if pstat.get("reason") or pstat.get("message"):
            said = f"{pstat.get('reason', '')} {pstat.get('message', '')}".strip()
            parts.append(f"pod {pod['metadata'].get('name')}: {said}")
        failed = _failed_container(pod)
        term = (failed.get("state") or {}).get("terminated") or {}
        if term:
            detail = f"{failed.get('name', 'container')} exit code {term.get('exitCode')}"
            if term.get("reason"):
                detail += f" ({term['reason']})"
            if term.get("message"):
                detail += f": {term['message']}"
            parts.append("last attempt: " + detail)
    return _clip("; ".join(parts))
