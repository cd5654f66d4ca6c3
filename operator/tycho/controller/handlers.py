"""kopf wiring only: watch-fed indexes, and which watch event triggers which reconcile.

Two indexes hold what a reconcile reads — pipelines by (namespace, name) and stage Jobs
by (namespace, pipeline) — so a reconcile makes no GET or LIST call for them (kopf fills
every index before it calls any handler, so a restarted operator sees the Jobs it created
before it decides anything). Pods are not watched (see ``tycho.executors.kube``). Event handlers only
trigger the work queue (``tycho.controller.queue``), the one place that reconciles and
retries.

No ``@kopf.on.delete`` handler, timer or daemon on pipelines: each would make kopf add a
finalizer, and a finalizer wedges ``kubectl delete`` while the operator is down. Deleting
a pipeline needs no operator at all: its Jobs go with it through owner references.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from tycho import settings as settings_mod
from tycho.api import models
from tycho.controller import events, metrics, queue as queue_mod, reconciler
from tycho.kube import client, naming, observe

Logger = logging.Logger | logging.LoggerAdapter[Any]
_TASKS: set[asyncio.Task[None]] = set()


def _pipeline(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a reconcile reads of a pipeline: the index keeps only this (no managedFields, no
    annotations but tycho's: ``kubectl apply`` leaves a copy of the whole manifest in one)."""
    meta = body.get("metadata", {})
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "generation", "labels", "ownerReferences",
                                 "creationTimestamp", "deletionTimestamp") if meta.get(k) is not None}
    kept["annotations"] = naming.ours(meta.get("annotations"))
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": kept,
            "status": dict(body.get("status") or {}), "spec": dict(body.get("spec") or {})}


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one on every watch event (a deep copy of the whole object,
    managedFields included) to find what changed for ``on.create``/``on.update``/``on.resume``
    handlers. This operator has none (see the module docstring; a test keeps it so), so the
    copy is never read, and at 500 pipelines it was the operator's largest source of garbage."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.index(models.GROUP, models.VERSION, models.PLURAL)
def pipelines(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", name): _pipeline(body)}


@kopf.index("batch", "v1", "jobs", labels={naming.LABEL_PIPELINE: kopf.PRESENT})
def pipeline_jobs(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", labels[naming.LABEL_PIPELINE]): observe.essentials(body)}


class Indexes:
    """The indexes, read on the event loop into one pipeline's ``World``."""

    def __init__(self, pipelines: kopf.Index[Any, Any], jobs: kopf.Index[Any, Any]) -> None:
        self.pipelines, self.jobs = pipelines, jobs

    def world(self, ns: str, name: str) -> reconciler.World:
        found = list(self.pipelines.get((ns, name), []))
        jobs = {j["metadata"]["name"]: j for j in self.jobs.get((ns, name), [])}
        return reconciler.World(pipeline=found[0] if found else None, jobs=jobs)


def _post(ref: dict[str, Any], event: events.Event) -> None:
    kopf.event(cast(kopf.Body, ref), type=event.type, reason=event.reason, message=event.message)


def _queue(memo: Any) -> queue_mod.WorkQueue:
    queue: queue_mod.WorkQueue = memo.queue
    return queue


def _spawn(memo: Any, ns: str, name: str) -> None:
    task = asyncio.get_running_loop().create_task(_queue(memo).trigger(ns, name))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **indexes: Any) -> None:
    """Wire the queue to the indexes (kopf passes every index to every handler, by name)."""
    cfg = settings_mod.Settings.from_env()
    settings.posting.level = logging.INFO
    settings.persistence.diffbase_storage = NoDiffBase()
    metrics.serve(cfg.metrics_port)
    # a connection for every pass that may run at once, and for the reads they start
    kube = client.Kube(client.api_client(pool_size=2 * queue_mod.WORKERS), on_call=metrics.count_call)
    rec = reconciler.Reconciler(cfg, kube)
    world = Indexes(indexes["pipelines"], indexes["pipeline_jobs"]).world
    memo.forget = rec.forget
    memo.queue = queue_mod.WorkQueue(rec.reconcile, world, post=_post)
    memo.seen = {}
    logger.info("tycho operator: namespaces=%s metrics=:%d", ",".join(cfg.namespaces) or "(all)", cfg.metrics_port)


@kopf.on.cleanup()
def cleanup(memo: Any, **_: Any) -> None:
    _queue(memo).shutdown()


@kopf.on.event(models.GROUP, models.VERSION, models.PLURAL)
async def pipeline_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, memo: Any,
                         **_: Any) -> None:
    ns = namespace or ""
    if event["type"] == "DELETED":
        memo.seen.pop((ns, name), None)
        _queue(memo).forget(ns, name)
        memo.forget(ns, name)
        return
    # The operator's own status writes come back as events: only a new generation (spec),
    # a deletion or a first sight needs a reconcile.
    meta = body.get("metadata", {})
    mark = (meta.get("uid"), meta.get("generation"), bool(meta.get("deletionTimestamp")))
    if memo.seen.get((ns, name)) != mark:
        memo.seen[(ns, name)] = mark
        _spawn(memo, ns, name)


@kopf.on.event("batch", "v1", "jobs", labels={naming.LABEL_PIPELINE: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                    memo: Any, **_: Any) -> None:
    # A Job first seen running needs no pass: this process created it (and counted it as
    # running), or it was listed at start-up, when every pipeline gets a pass anyway.
    gone = event["type"] == "DELETED"
    if _queue(memo).job_changed(str(body.metadata.uid), None if gone else observe.fingerprint(body),
                                unseen=observe.CREATED):
        _spawn(memo, namespace or "", labels[naming.LABEL_PIPELINE])
