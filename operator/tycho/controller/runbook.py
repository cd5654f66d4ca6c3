"""Run bookkeeping for cluster runs: which run a pipeline is in, and its typed summary.

A pipeline's run is named in ``status.runId`` with the digest of the spec it was started
for (``status.specDigest``). A new run starts on the first reconcile and whenever the
spec digest changes; ``spec.suspend`` is not part of the digest, so suspending and
resuming continue the same run. A new run's id is derived from the object's uid and
generation and the spec digest (``tycho.engine.scheduler.cluster_run_id``), so an
operator that crashes after starting a run finds the same run again. This class only
caches summaries between reconciles; the store holds the truth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tycho.api import models, status as xp
from tycho.engine import identity, model, scheduler
from tycho.provenance import documents, layout, runs, signing, store as store_mod


class RunBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, documents.RunSummary] = {}
        self.key = signing.configured_key()
        """Seals finished runs' summaries (``TYCHO_SIGNING_KEY``; the chart mounts the signing Secret)."""

    def _load(self, store: store_mod.Store, run_id: str) -> documents.RunSummary | None:
        with self._lock:
            cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        summary = runs.load_if_exists(store, run_id)
        if summary is None:
            return None
        runs.ensure_indexed(store, summary)  # an operator killed between summary and marker ...
        if summary.phase != "Running" and self.key is not None \
                and not store.exists(layout.run_attestation_rel(summary.run_id)):
            runs.seal(store, summary, self.key)  # ... or between a finished summary and its seal
        with self._lock:
            self._cache[run_id] = summary
        return summary

    def current(self, store: store_mod.Store, pipeline: models.ExperimentPipeline, digest: str,
                prior: xp.Status, now: str, external: Callable[[models.ExperimentPipeline], dict[str, str]],
                reproduces: str | None = None) -> documents.RunSummary:
        """The summary of the run the pipeline is in, started (and stored) if it is new.
        ``digest`` is ``tycho.engine.scheduler.spec_digest`` of its spec."""
        meta, spec = pipeline.metadata, pipeline.spec
        if prior.run_id and prior.spec_digest == digest:
            old = self._load(store, prior.run_id)
            if old is not None and old.runner.uid == meta.uid:
                return old
        run_id = scheduler.cluster_run_id(meta, digest)
        found = self._load(store, run_id)
        if found is not None:
            return found
        if prior.run_id and prior.run_id != run_id:
            previous = self._load(store, prior.run_id)
            if previous is not None and previous.phase == "Running":
                self.save(store, previous.model_copy(update={"phase": "Superseded", "finished_at": now,
                                                             "message": "the spec changed: a new run took over"}))
            self.forget(prior.run_id)
        code = identity.code(spec)
        summary = documents.RunSummary(
            run_id=run_id, pipeline=meta.name, created_at=now, heartbeat_at=None, store=store.url,
            runner=documents.Runner(executor="kubernetes", namespace=meta.namespace, uid=meta.uid,
                               generation=meta.generation),
            description=spec.description, owner=spec.owner, tags=list(spec.tags), code=code, reproduces=reproduces,
            spec_digest=digest, external=external(pipeline),
            manifest={"apiVersion": pipeline.api_version, "kind": pipeline.kind,
                      "metadata": {"name": meta.name, "namespace": meta.namespace},
                      "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)},
            stages={s.name: documents.StageResult(name=s.name) for s in spec.stages})
        self.save(store, summary, indexed=False)
        return summary

    def save(self, store: store_mod.Store, summary: documents.RunSummary, indexed: bool = True) -> None:
        digest = runs.save(store, summary, indexed=indexed)
        if summary.phase != "Running":
            runs.seal(store, summary, self.key, digest)
        with self._lock:
            self._cache[summary.run_id] = summary

    def record(self, store: store_mod.Store, summary: documents.RunSummary, plan: model.Plan,
               now: str) -> documents.RunSummary:
        """Fold a step's results into the summary; writes it only when something changed."""
        finished = plan.phase != "Running"
        updated = summary.model_copy(update={
            "stages": plan.stages, "phase": plan.phase,
            "finished_at": (summary.finished_at or now) if finished else None})
        if updated != summary:
            self.save(store, updated)
        return updated

    def forget(self, run_id: str | None) -> None:
        with self._lock:
            self._cache.pop(run_id or "", None)
