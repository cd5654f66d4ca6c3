"""Reconciles one pipeline: take what the watches show, step the engine, apply the step.

Level-triggered and idempotent: every call starts from a ``World`` — the pipeline and its
Jobs as the operator's watch-fed indexes hold them — and from the run's
summary in the store, never from what an earlier call intended, so it is safe on any
event, any number of times, and after a crash. Reading the world costs no API call; an
idle reconcile makes none. The API calls are the step's: create or delete Jobs, read the
pods of a Job that just finished (once), and write the status when it changed. Runs in a
worker thread (``tycho.controller.queue``): it blocks on the store and the API server, never
on the event loop.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from tycho.api import models, phases, problems, status as xp, validation
from tycho.controller import events, metrics, runbook, status as status_mod
from tycho.engine import identity, lookup, model, prepare, scheduler
from tycho.executors import kube as kube_executor
from tycho.kube import client, jobs, naming, policy
from tycho.provenance import documents, store as store_mod
from tycho.settings import Settings

log = logging.getLogger("tycho.operator")
Checked = tuple[models.ExperimentPipeline, str, str] | problems.InvalidManifest
"""A pipeline generation, checked: (pipeline, store URL, spec digest), or why it is invalid."""
RETRY_SECONDS = 2.0
CHECKED_REMEMBERED = 10000


@dataclasses.dataclass(frozen=True)
class World:
    """One pipeline as the watches show it now."""

    pipeline: Mapping[str, Any] | None
    """The object (None: gone)."""
    jobs: Mapping[str, Mapping[str, Any]]
    """Its Jobs by name (labelled with its name; ownership is checked here)."""


@dataclasses.dataclass
class Result:
    events: list[events.Event] = dataclasses.field(default_factory=list)
    ref: dict[str, Any] | None = None
    requeue_after: float | None = None


def manifest_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pipeline object validation looks at (no status, no managedFields)."""
    meta = body.get("metadata", {})
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
            "spec": body.get("spec")}


class Reconciler:
    def __init__(self, settings: Settings, kube: client.Kube) -> None:
        self.settings, self.kube = settings, kube
        self.runs = runbook.RunBook()
        self.memory = kube_executor.Memory()
        self._stores: dict[str, store_mod.Store] = {}
        self._written: dict[str, tuple[str, xp.Status]] = {}  # "ns/name" -> (uid, status this process wrote)
        self._checked: collections.OrderedDict[tuple[str, Any], Checked] = collections.OrderedDict()
        self._lock = threading.Lock()

    def forget(self, ns: str, name: str) -> None:
        """The pipeline is gone: drop what this process cached about it."""
        with self._lock:
            written = self._written.pop(f"{ns}/{name}", None)
        if written is not None:
            self.runs.forget(written[1].run_id)
        metrics.observe_stages(f"{ns}/{name}", None)

    def _store(self, url: str) -> store_mod.Store:
        with self._lock:
            if url not in self._stores:
                self._stores[url] = store_mod.Store(url)
            return self._stores[url]

    def _prior(self, key: str, body: Mapping[str, Any]) -> xp.Status:
        """The newest status: the one this process last wrote (the watch may lag behind it)."""
        uid = str(body["metadata"].get("uid"))
        with self._lock:
            written = self._written.get(key)
        if written is not None and written[0] == uid:
            return written[1]
        return status_mod.parse(body.get("status"))

    def reconcile(self, world: World) -> Result:
        started = time.perf_counter()
        try:
            return self._reconcile(world)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    def _reconcile(self, world: World) -> Result:
        body = world.pipeline
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Result()  # owner references let the garbage collector delete the Jobs
        ns, name = body["metadata"].get("namespace", ""), body["metadata"]["name"]
        key = f"{ns}/{name}"
        ref = naming.object_ref(body)
        prior = self._prior(key, body)
        now = documents.now()
        generation = body["metadata"].get("generation")
        checked = self._check(body)
        if isinstance(checked, problems.InvalidManifest):
            new = status_mod.invalid(prior, checked.problems, generation, now)
            self._write(key, body, prior, new)
            return Result(events.build(prior, new), ref)
        pipeline, url, digest = checked
        store = self._store(url)
        reproduces = (body["metadata"].get("annotations") or {}).get(naming.ANNOTATION_REPRODUCES)
        summary = self.runs.current(store, pipeline, digest, prior, now, prepare.external_digests,
                                    reproduces=reproduces)
        uid = str(pipeline.metadata.uid)
        executor = kube_executor.KubeExecutor(
            kube=self.kube, settings=self.settings, pipeline=pipeline, store=store,
            jobs={n: j for n, j in world.jobs.items() if naming.owned_by(j, uid)}, memory=self.memory,
            settled={s.cache_key for s in summary.stages.values() if s.phase in phases.DONE and s.cache_key})
        plan = scheduler.step(context(pipeline, summary, store, executor, force=bool(reproduces)), model.Observed(
            stages=summary.stages, executions=executor.observe(), lookup=lookup.StoreLookup(store, executor.admit),
            now=now, suggest=lookup.StoreSuggestions(store)))
        for execution in plan.cancel:
            executor.cancel(execution)
        for start in plan.start:
            executor.start(start)
        metrics.JOBS_CREATED.inc(executor.created_jobs)
        summary = self.runs.record(store, summary, plan, now)
        new = status_mod.build(prior, stages=[status_mod.stage_status(s, store.url) for s in plan.stages.values()],
                               run_id=summary.run_id, spec_digest=summary.spec_digest, generation=generation,
                               suspended=pipeline.spec.suspend, now=now)
        self._write(key, body, prior, new)
        metrics.observe_stages(key, new)
        metrics.count_transitions(prior, new)
        requeue = RETRY_SECONDS if plan.waiting_for_deletion or executor.blocked else None
        return Result(events.build(prior, new), ref, requeue)

    def _check(self, body: Mapping[str, Any]) -> Checked:
        """The validated pipeline, its store URL and spec digest; once per generation (the
        spec of a generation never changes), not on every reconcile."""
        meta = body["metadata"]
        mark = (str(meta.get("uid")), meta.get("generation"))
        with self._lock:
            found = self._checked.get(mark)
        if found is not None:
            return found
        try:
            pipeline = validation.check(manifest_of(body))
            url = jobs.store_url(pipeline.spec, self.settings)
            if refused := jobs.store_problems(url) + policy.check(pipeline, self.settings):
                raise problems.InvalidManifest(refused)
            result: Checked = (pipeline, url, scheduler.spec_digest(pipeline.spec))
        except problems.InvalidManifest as bad:
            result = bad
        with self._lock:
            self._checked[mark] = result
            while len(self._checked) > CHECKED_REMEMBERED:
                self._checked.popitem(last=False)
        return result

    def _write(self, key: str, body: Mapping[str, Any], prior: xp.Status, new: xp.Status) -> None:
        """Write the status only when it changed (``prior`` is the newest known, see ``_prior``)."""
        doc = status_mod.dump(new)
        if doc != status_mod.dump(prior) or (key not in self._written and doc != body.get("status")):
            meta = body["metadata"]
            self.kube.replace_status(meta.get("namespace", ""), meta["name"], doc)
        with self._lock:
            self._written[key] = (str(body["metadata"].get("uid")), new)


def context(pipeline: models.ExperimentPipeline, summary: documents.RunSummary, store: store_mod.Store,
            executor: kube_executor.KubeExecutor, force: bool) -> model.Context:
    images = {s.name: executor.image(s) for s in pipeline.spec.stages}
    return model.Context(pipeline=pipeline, run_id=summary.run_id, store=store.url,
                         code=summary.code or identity.code(pipeline.spec), workdir=pipeline.spec.code.workdir,
                         images={n: i[0] for n, i in images.items()},
                         image_parts={n: i[1] for n, i in images.items()}, external=summary.external,
                         executor=executor.kind, force=force)
