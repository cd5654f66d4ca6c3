"""Run bookkeeping for cluster runs: which run a pipeline is in, and its run summary.

A pipeline's run id lives in ``status.runId``. A new run starts on the first reconcile and
whenever the spec changes, except for ``spec.suspend``: suspending and resuming continues
the same run (finished stages stay finished). The run summary (``runs/<run-id>.json``,
written with ``tycho.provenance.runs`` like the local runner does) keeps a digest of the
spec it was started for, so a restarted operator can tell "same run" from "new spec"
without any state of its own; this class only caches summaries between reconciles.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tycho.api import models
from tycho.kube import jobs
from tycho.planning import cachekey
from tycho.provenance import runs, store as store_mod
from tycho.settings import Settings


def spec_digest(spec: models.Spec) -> str:
    """What makes a new run: the whole spec except ``suspend``."""
    return cachekey.digest(spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"suspend"}))


def _entry(stage: models.StageStatus, components: Mapping[str, Any] | None, image: dict[str, Any]) -> dict[str, Any]:
    return {"name": stage.name, "phase": stage.phase, "cacheHit": stage.cache_hit, "cacheKey": stage.cache_key,
            "keyComponents": components, "outputs": {o.name: o.sha256 for o in stage.outputs},
            "record": stage.provenance, "metrics": dict(stage.metrics), "attempts": stage.attempts,
            "startedAt": stage.started_at, "finishedAt": stage.finished_at, "message": stage.message,
            "jobName": stage.job_name, "image": image}


class RunBook:
    """Summaries of the runs in progress, cached per process (the store holds the truth)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}
        self._indexed: set[str] = set()

    def _load(self, store: store_mod.Store, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        if not store.exists(runs.summary_rel(run_id)):
            return None
        doc = runs.load(store, run_id)
        with self._lock:
            self._cache[run_id] = doc
        return doc

    def current(self, store: store_mod.Store, pipeline: models.ExperimentPipeline, run_id: str | None,
                settings: Settings, now: str,
                external: Callable[[models.ExperimentPipeline], dict[str, str]]) -> tuple[dict[str, Any], bool]:
        """(summary of the run the pipeline is in, whether it was just started)."""
        meta, spec = pipeline.metadata, pipeline.spec
        digest = spec_digest(spec)
        old = self._load(store, run_id) if run_id else None
        if old is not None and old.get("specDigest") == digest and old.get("kubernetes", {}).get("uid") == meta.uid:
            return old, False
        if old is not None and old.get("phase") == "Running":
            self.save(store, {**old, "phase": "Superseded", "finishedAt": now})
        self.forget(run_id)
        new_id = runs.new_run_id(meta.name)
        code_digest = spec.code.digest.removeprefix("sha256:") if spec.code.digest else None
        summary: dict[str, Any] = {
            "runId": new_id, "pipeline": meta.name, "createdAt": now, "finishedAt": None, "phase": "Running",
            "store": store.url, "description": spec.description, "owner": spec.owner, "tags": list(spec.tags),
            "reproduces": None, "runner": "kubernetes",
            "kubernetes": {"namespace": meta.namespace, "uid": meta.uid, "generation": meta.generation},
            "code": {"digest": code_digest, "source": jobs.code_identity(spec, spec.stages[0])[1],
                     "workdir": spec.code.workdir},
            "environment": None, "specDigest": digest, "external": external(pipeline),
            "manifest": {"apiVersion": pipeline.api_version, "kind": pipeline.kind,
                         "metadata": {"name": meta.name, "namespace": meta.namespace},
                         "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)},
            "stages": {s.name: _entry(models.StageStatus(name=s.name), None, {"reference": s.image})
                       for s in spec.stages},
        }
        self.save(store, summary)
        return summary, True

    def save(self, store: store_mod.Store, summary: dict[str, Any]) -> None:
        run_id = summary["runId"]
        with self._lock:
            indexed = run_id in self._indexed
        if indexed:  # the pipeline's run index already lists it: one write, not three requests
            store.write_json(runs.summary_rel(run_id), summary)
        else:
            runs.save(store, summary)
        with self._lock:
            self._cache[run_id] = summary
            self._indexed.add(run_id)

    def record(self, store: store_mod.Store, summary: dict[str, Any], status: models.Status,
               components: Mapping[str, dict[str, Any]], images: Mapping[str, str], now: str) -> bool:
        """Fold a new status into the summary; writes it only when something changed."""
        updated = copy.deepcopy(summary)
        for stage in status.stages:
            old = summary["stages"].get(stage.name, {})
            image = dict(old.get("image") or {})
            if stage.name in images:
                image["imageID"] = images[stage.name]
            updated["stages"][stage.name] = _entry(stage, components.get(stage.name) or old.get("keyComponents"), image)
        if status.phase in ("Succeeded", "Failed"):
            updated["phase"] = status.phase
            updated["finishedAt"] = summary.get("finishedAt") or now
        elif status.phase in ("Running", "Pending", "Suspended"):
            updated["phase"], updated["finishedAt"] = "Running", None
        if updated == summary:
            return False
        self.save(store, updated)
        return True

    def forget(self, run_id: str | None) -> None:
        with self._lock:
            self._cache.pop(run_id or "", None)
            self._indexed.discard(run_id or "")
