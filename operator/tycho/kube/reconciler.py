"""Reconciles one pipeline: read the world, take one ``tycho.kube.step``, apply it.

Level-triggered and idempotent: every call starts from what the API server and the store
say now (the pipeline, its Jobs, the run summary), never from memory, so it is safe to
call on any event, any number of times, and after a crash. Called from a worker thread by
``tycho.kube.workqueue``; it blocks on I/O (API server, object store).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from tycho.api import models, validation
from tycho.kube import client, events, jobs, metrics, naming, observe, runbook, status as status_mod, step
from tycho.planning import plan
from tycho.provenance import store as store_mod
from tycho.runners import resolve
from tycho.settings import Settings
from tycho.stage import wrapper

log = logging.getLogger("tycho.operator")
FOREIGN_JOB_RETRY = 2.0


@dataclasses.dataclass
class Result:
    events: list[events.Event] = dataclasses.field(default_factory=list)
    ref: dict[str, Any] | None = None
    requeue_after: float | None = None


class _Probe:
    """Store and pod answers for one step (pods fetched once per Job)."""

    def __init__(self, store: store_mod.Store, kube: client.Kube) -> None:
        self.store, self.kube = store, kube
        self._lookup = resolve.lookup(store)
        self._pods: dict[str, list[Mapping[str, Any]]] = {}

    def lookup(self, key: str) -> plan.CacheEntry | None:
        return self._lookup(key)

    def produced(self, key: str) -> plan.CacheEntry | None:
        try:
            doc = self.store.read_json(f"cache/{key}.json")
        except FileNotFoundError:
            return None
        return plan.CacheEntry(key=key, outputs=dict(doc["outputs"]), record=doc["record"],
                               metrics=dict(doc.get("metrics", {})))

    def pods(self, job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        uid = job["metadata"]["uid"]
        if uid not in self._pods:
            self._pods[uid] = list(self.kube.job_pods(dict(job)))
        return self._pods[uid]


def manifest_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pipeline object validation looks at (no status, no managedFields)."""
    meta = body.get("metadata", {})
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
            "spec": body.get("spec")}


class Reconciler:
    def __init__(self, settings: Settings, kube: client.Kube, *, allow_local_store: bool = False) -> None:
        """``allow_local_store``: accept file:// stores (tests, where "pods" share this disk)."""
        self.settings, self.kube, self.allow_local_store = settings, kube, allow_local_store
        self.runs = runbook.RunBook()
        self._stores: dict[str, store_mod.Store] = {}
        self._stores_lock = threading.Lock()
        self._run_of: dict[str, str] = {}  # "ns/name" -> run id, to drop cached summaries

    def forget(self, ns: str, name: str) -> None:
        """The pipeline is gone: drop what this process cached about it."""
        self.runs.forget(self._run_of.pop(f"{ns}/{name}", None))

    def _store(self, url: str) -> store_mod.Store:
        with self._stores_lock:
            if url not in self._stores:
                self._stores[url] = store_mod.Store(url)
            return self._stores[url]

    def reconcile(self, ns: str, name: str) -> Result:
        started = time.perf_counter()
        try:
            return self._reconcile(ns, name)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    def _reconcile(self, ns: str, name: str) -> Result:
        body = self.kube.get_pipeline(ns, name)
        key = f"{ns}/{name}"
        if body is None or body["metadata"].get("deletionTimestamp"):
            metrics.observe_stages(key, None)
            return Result()  # owner references let the garbage collector delete the Jobs
        ref = naming.object_ref(body)
        prior = status_mod.parse(body.get("status"))
        now = wrapper.now()
        generation = body["metadata"].get("generation")
        try:
            pipeline = validation.check(manifest_of(body))
            url = jobs.store_url(pipeline.spec, self.settings)
            if not self.allow_local_store and (problems := jobs.store_problems(url)):
                raise validation.InvalidManifest(problems)
        except validation.InvalidManifest as bad:
            new = status_mod.invalid(prior, bad.problems, generation, now)
            self._write(ns, name, body, new)
            return Result(events.build(prior, new), ref)
        store = self._store(url)
        summary, fresh = self.runs.current(store, pipeline, prior.run_id, self.settings, now,
                                           resolve.external_digests)
        base = prior
        if fresh:
            # Claim the run in the status before creating any Job: an operator killed after
            # this point continues this run instead of starting (and orphaning) another one.
            base = models.Status(phase="Pending", run_id=summary["runId"], observed_generation=generation,
                                 conditions=prior.conditions)
            self._write(ns, name, body, base)
        uid = str(body["metadata"]["uid"])
        self._run_of[key] = summary["runId"]
        world = step.World(pipeline=pipeline, prior=base, run_id=summary["runId"], store=store.url,
                           external=summary.get("external") or {}, jobs=self.kube.list_jobs(ns, name, uid),
                           settings=self.settings, now=now)
        outcome = step.step(world, _Probe(store, self.kube))
        requeue = 1.0 if outcome.waiting_for_deletion else None
        for manifest in outcome.create:
            job, created = self.kube.create_job(manifest)
            if created:
                metrics.JOBS_CREATED.inc()
            elif job is None or not naming.owned_by(job, uid) or observe.is_deleting(job):
                requeue = FOREIGN_JOB_RETRY  # the name is held by a Job on its way out
            else:
                log.info("adopted existing Job %s/%s", ns, manifest["metadata"]["name"])
        for job_name in outcome.delete:
            self.kube.delete_job(ns, job_name)
        self._write(ns, name, body, outcome.status)
        self.runs.record(store, summary, outcome.status, outcome.components, outcome.images, now)
        metrics.observe_stages(key, outcome.status)
        metrics.count_transitions(prior, outcome.status)
        return Result(events.build(prior, outcome.status), ref, requeue)

    def _write(self, ns: str, name: str, body: Mapping[str, Any], new: models.Status) -> None:
        doc = status_mod.dump(new)
        if doc != body.get("status"):
            self.kube.replace_status(ns, name, doc)
