"""The Kubernetes executor: each stage execution is a batch/v1 Job named by its execution id.

It observes from a watch-fed snapshot (the operator's Job informer), so observing a
running Job costs no API call; only starting (create) and cancelling (delete) do. What
the watch has not shown yet is bridged by ``Memory``: Jobs created a moment ago count as
running (the "expectations" of Kubernetes' own controllers) and Jobs just deleted as
deleting, so a quick second reconcile neither creates nor deletes twice. A finished Job
is read once — its pods (why it failed, which image digest the node ran) and, if it
succeeded, its outputs from the store (``cache/<key>.json``, written by the wrapper in
the pod) — and remembered by Job UID. Pods are not watched: they change far more often
than Jobs, and only a finished Job's pods matter.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Collection, Mapping
from typing import Any

from tycho.api import models
from tycho.engine import identity, model
from tycho.kube import client, jobs, naming, observe as job_watch
from tycho.provenance import cache, documents, store as store_mod
from tycho.settings import Settings

EXPECTATION_SECONDS = 120.0
RESULTS_REMEMBERED = 20000


@dataclasses.dataclass(frozen=True)
class Finished:
    """What a finished Job left: read once, remembered by its UID."""

    message: str = ""
    image: documents.ImageRef | None = None
    result: documents.CacheEntry | None = None


@dataclasses.dataclass
class Memory:
    """What one operator process knows beyond its watches (kept across reconciles)."""

    created: dict[tuple[str, str], tuple[float, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    deleted: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    finished: collections.OrderedDict[str, Finished] = dataclasses.field(default_factory=collections.OrderedDict)
    reads: concurrent.futures.ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="finished-read"))
    """Reads a finished Job's outputs from the store while its pods are read from the API server."""

    def remember(self, uid: str, done: Finished) -> None:
        self.finished[uid] = done
        while len(self.finished) > RESULTS_REMEMBERED:
            self.finished.popitem(last=False)


class KubeExecutor:
    kind = "kubernetes"

    def __init__(self, *, kube: client.Kube, settings: Settings, pipeline: models.ExperimentPipeline,
                 store: store_mod.Store, jobs: Mapping[str, Mapping[str, Any]], memory: Memory,
                 settled: Collection[str] = ()) -> None:
        """``jobs``: the pipeline's Jobs by name (owned by it); ``settled``: cache keys whose
        results the run holds already (their Jobs are not read again, e.g. by an operator
        that just restarted)."""
        self.kube, self.settings, self.pipeline, self.store = kube, settings, pipeline, store
        self.jobs, self.memory, self.settled = jobs, memory, set(settled)
        self.ns = pipeline.metadata.namespace or ""
        self.created_jobs = 0
        self.blocked = False
        """A Job name is held by a Job on its way out (or not ours): try again shortly."""

    # ---- identity --------------------------------------------------------------------------
    def image(self, stage: models.Stage) -> tuple[documents.ImageRef, Mapping[str, Any]]:
        return identity.image(stage)

    def admit(self, entry: documents.CacheEntry) -> str | None:
        return None  # the image part of the key is the whole environment

    # ---- observing -------------------------------------------------------------------------
    def observe(self) -> dict[str, model.Execution]:
        now = time.monotonic()
        out: dict[str, model.Execution] = {}
        for name, job in self.jobs.items():
            self.memory.created.pop((self.ns, name), None)
            out[name] = self._execution(job)
        for (ns, name), (when, body) in list(self.memory.created.items()):
            if ns != self.ns or name in out:
                continue
            if now - when > EXPECTATION_SECONDS:
                del self.memory.created[(ns, name)]
            elif naming.owned_by(body, self.pipeline.metadata.uid or ""):
                out[name] = self._execution(body)
        for (ns, name), when in list(self.memory.deleted.items()):
            if ns != self.ns:
                continue
            if name not in self.jobs or now - when > EXPECTATION_SECONDS:
                del self.memory.deleted[(ns, name)]
            elif name in out and not out[name].deleting:
                out[name] = out[name].model_copy(update={"deleting": True})
        return out

    def _execution(self, job: Mapping[str, Any]) -> model.Execution:
        meta = job.get("metadata", {})
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        state = job_watch.job_state(job)
        key = str(annotations.get(naming.ANNOTATION_KEY, ""))
        done = Finished()
        if key in self.settled:  # the run holds its result: what was read of it is not needed again
            self.memory.finished.pop(str(meta.get("uid", "")), None)
        elif state.phase != "Running":
            done = self._finished(job, state, key)
        return model.Execution(
            id=str(meta.get("name")), stage=str(labels.get(naming.LABEL_STAGE, "")), cache_key=key,
            run_id=job_watch.run_of(job), trial=_trial(annotations), phase=state.phase,
            deleting=job_watch.is_deleting(job),
            attempts=state.attempts, started_at=state.started, finished_at=state.finished,
            message=done.message, result=done.result, image=done.image)

    def _finished(self, job: Mapping[str, Any], state: job_watch.JobState, key: str) -> Finished:
        """Read what a finished Job left (its pods, and its outputs if it succeeded), once."""
        uid = str(job.get("metadata", {}).get("uid", ""))
        if uid in self.memory.finished:
            return self.memory.finished[uid]
        # The two reads are independent, and the next stage's Job waits for both.
        result = self.memory.reads.submit(cache.read, self.store, key) if state.phase == "Succeeded" else None
        pods = self.kube.job_pods(self.ns, uid) if uid else []
        container = (job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}])[0]
        image_id = job_watch.image_digest(pods)
        digest = image_id.rsplit("sha256:", 1)[1] if image_id and "sha256:" in image_id else None
        done = Finished(
            message=job_watch.failure_message(state, pods) if state.phase == "Failed" else "",
            image=documents.ImageRef(reference=str(container.get("image", "")), digest=digest,
                                     resolved_by="kubelet") if digest else None,
            result=result.result() if result is not None else None)
        if uid and (state.phase == "Failed" or done.result is not None):
            self.memory.remember(uid, done)
        return done

    # ---- acting ----------------------------------------------------------------------------
    def start(self, start: model.Start) -> None:
        manifest = jobs.build_job(pipeline=self.pipeline, start=start, settings=self.settings)
        body, created = self.kube.create_job(manifest)
        if created:
            self.created_jobs += 1
        elif body is None or not naming.owned_by(body, self.pipeline.metadata.uid or "") \
                or job_watch.is_deleting(body):
            self.blocked = True
            return
        self.memory.created[(self.ns, start.execution)] = (time.monotonic(), job_watch.essentials(body or manifest))

    def cancel(self, execution: str) -> None:
        if (self.ns, execution) in self.memory.deleted:
            return
        self.kube.delete_job(self.ns, execution)
        self.memory.deleted[(self.ns, execution)] = time.monotonic()
        self.memory.created.pop((self.ns, execution), None)

    def logs(self, execution: str) -> str:
        job = self.jobs.get(execution)
        uid = str((job or {}).get("metadata", {}).get("uid", ""))
        pods = sorted(self.kube.job_pods(self.ns, uid) if uid else [],
                      key=lambda p: str(p.get("metadata", {}).get("creationTimestamp")))
        return self.kube.pod_log(self.ns, str(pods[-1]["metadata"]["name"])) if pods else ""


def _trial(annotations: Mapping[str, Any]) -> int | None:
    raw = annotations.get(naming.ANNOTATION_TRIAL)
    return int(raw) if raw is not None and str(raw).isdigit() else None
