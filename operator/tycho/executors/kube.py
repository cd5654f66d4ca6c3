"""The Kubernetes executor: each stage execution is a batch/v1 Job named by its execution id.

It observes from a watch-fed snapshot (the operator's kopf indexes of Jobs and Pods), so
observing costs no API call; only starting (create) and cancelling (delete) do. What the
watch has not shown yet is bridged by ``Memory``: Jobs created a moment ago count as
running (the "expectations" of Kubernetes' own controllers) and Jobs just deleted as
deleting, so a quick second reconcile neither creates nor deletes twice. A succeeded
Job's outputs are read once from the store (``cache/<key>.json``, written by the
wrapper in the pod) and remembered by Job UID.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tycho.api import models
from tycho.engine import model
from tycho.kube import client, jobs, naming, observe
from tycho.planning import cachekey
from tycho.provenance import cache, documents, store as store_mod
from tycho.settings import Settings

EXPECTATION_SECONDS = 120.0
RESULTS_REMEMBERED = 20000


@dataclasses.dataclass
class Memory:
    """What one operator process knows beyond its watches (kept across reconciles)."""

    created: dict[tuple[str, str], tuple[float, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    deleted: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    results: collections.OrderedDict[str, documents.CacheEntry] = dataclasses.field(
        default_factory=collections.OrderedDict)

    def remember(self, uid: str, entry: documents.CacheEntry) -> None:
        self.results[uid] = entry
        while len(self.results) > RESULTS_REMEMBERED:
            self.results.popitem(last=False)


class KubeExecutor:
    kind = "kubernetes"

    def __init__(self, *, kube: client.Kube, settings: Settings, pipeline: models.ExperimentPipeline,
                 store: store_mod.Store, jobs: Mapping[str, Mapping[str, Any]],
                 pods: Mapping[str, Sequence[Mapping[str, Any]]], memory: Memory) -> None:
        """``jobs``: the pipeline's Jobs by name (owned by it); ``pods``: pods by Job UID."""
        self.kube, self.settings, self.pipeline, self.store = kube, settings, pipeline, store
        self.jobs, self.pods, self.memory = jobs, pods, memory
        self.ns = pipeline.metadata.namespace or ""
        self.created_jobs = 0
        self.blocked = False
        """A Job name is held by a Job on its way out (or not ours): try again shortly."""

    # ---- identity --------------------------------------------------------------------------
    def image(self, stage: models.Stage) -> tuple[documents.ImageRef, Mapping[str, Any]]:
        ref = jobs.image_ref(stage)
        return ref, cachekey.image_part(reference=stage.image, digest=ref.digest)

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
        uid = str(meta.get("uid", ""))
        state = observe.job_state(job)
        pods = self.pods.get(uid, []) if uid else []
        key = str(annotations.get(naming.ANNOTATION_KEY, ""))
        result: documents.CacheEntry | None = None
        if state.phase == "Succeeded":
            result = self.memory.results.get(uid) or cache.read(self.store, key)
            if result is not None and uid:
                self.memory.remember(uid, result)
        container = (job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}])[0]
        image_id = observe.image_digest(pods)
        digest = image_id.rsplit("sha256:", 1)[1] if image_id and "sha256:" in image_id else None
        image = documents.ImageRef(reference=str(container.get("image", "")), digest=digest,
                              resolved_by="kubelet") if digest else None
        return model.Execution(
            id=str(meta.get("name")), stage=str(labels.get(naming.LABEL_STAGE, "")), cache_key=key,
            run_id=observe.run_of(job), phase=state.phase, deleting=observe.is_deleting(job),
            attempts=state.attempts, started_at=state.started, finished_at=state.finished,
            message=observe.failure_message(state, pods) if state.phase == "Failed" else "",
            result=result, image=image)

    # ---- acting ----------------------------------------------------------------------------
    def start(self, start: model.Start) -> None:
        manifest = jobs.build_job(pipeline=self.pipeline, start=start, settings=self.settings)
        body, created = self.kube.create_job(manifest)
        if created:
            self.created_jobs += 1
        elif body is None or not naming.owned_by(body, self.pipeline.metadata.uid or "") \
                or observe.is_deleting(body):
            self.blocked = True
            return
        self.memory.created[(self.ns, start.execution)] = (time.monotonic(), body or manifest)

    def cancel(self, execution: str) -> None:
        if (self.ns, execution) in self.memory.deleted:
            return
        self.kube.delete_job(self.ns, execution)
        self.memory.deleted[(self.ns, execution)] = time.monotonic()
        self.memory.created.pop((self.ns, execution), None)

    def logs(self, execution: str) -> str:
        job = self.jobs.get(execution)
        uid = str((job or {}).get("metadata", {}).get("uid", ""))
        pods = sorted(self.pods.get(uid, []), key=lambda p: str(p.get("metadata", {}).get("creationTimestamp")))
        return self.kube.pod_log(self.ns, str(pods[-1]["metadata"]["name"])) if pods else ""
