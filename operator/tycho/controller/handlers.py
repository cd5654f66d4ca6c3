"""kopf wiring only: watch-fed caches, and which watch event triggers which reconcile.

Two watch-fed caches hold what a reconcile reads, so a reconcile makes no GET or LIST call
for them: pipelines by (namespace, name) in a kopf index, and stage Jobs by (namespace,
pipeline) in the Job informer (``tycho.kube.informer``; why not a kopf index is said there).
No pass runs before both hold their first listing, so a restarted operator sees the Jobs it
created before it decides anything. Pods are not watched (see ``tycho.executors.kube``).
Handlers only trigger the work queue (``tycho.controller.queue``), the one place that
reconciles and retries.

No ``@kopf.on.delete`` handler, timer or daemon on pipelines: each would make kopf add a
finalizer, and a finalizer wedges ``kubectl delete`` while the operator is down. Deleting
a pipeline needs no operator at all: its Jobs go with it through owner references.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import logging
import socket
from collections.abc import Mapping
from typing import Any, cast

import kopf

from tycho import settings as settings_mod
from tycho.api import models
from tycho.controller import events, metrics, queue as queue_mod, reconciler
from tycho.kube import client, informer, naming

Logger = logging.Logger | logging.LoggerAdapter[Any]
log = logging.getLogger("tycho.operator")
_TASKS: set[asyncio.Task[None]] = set()


def index_entry(body: Mapping[str, Any]) -> dict[str, Any]:
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
    return {(namespace or "", name): index_entry(body)}


class Indexes:
    """The caches, read on the event loop into one pipeline's ``World``."""

    def __init__(self, pipelines: kopf.Index[Any, Any], jobs: informer.JobCache) -> None:
        self.pipelines, self.jobs = pipelines, jobs

    def world(self, ns: str, name: str) -> reconciler.World:
        found = list(self.pipelines.get((ns, name), []))
        return reconciler.World(pipeline=found[0] if found else None, jobs=self.jobs.jobs(ns, name))


class Poster:
    """Posts Kubernetes Events in order from one thread of its own: a pass never waits on
    them, nor does the event loop. An Event that cannot be posted is logged and dropped
    (Events tell the story; the status and the store hold the truth)."""

    def __init__(self, kube: client.Kube) -> None:
        self.kube, self.instance = kube, socket.gethostname()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="events")

    def post(self, ref: dict[str, Any], event: events.Event) -> None:
        try:
            self._thread.submit(self._send, ref, event)
        except RuntimeError:  # shut down: the operator is stopping
            log.info("not posted (stopping): %s %s", event.reason, event.message)

    def _send(self, ref: dict[str, Any], event: events.Event) -> None:
        # eventTime is a MicroTime: the API server wants exactly six digits of fraction
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        try:
            self.kube.post_event(events.manifest(ref, event, now, self.instance))
        except Exception as err:  # noqa: BLE001 - an Event is never worth failing anything for
            log.warning("could not post Event %s about %s: %s", event.reason, ref.get("metadata", {}).get("name"), err)

    def shutdown(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def _queue(memo: Any) -> queue_mod.WorkQueue:
    queue: queue_mod.WorkQueue = memo.queue
    return queue


def _spawn(memo: Any, ns: str, name: str) -> None:
    task = asyncio.get_running_loop().create_task(_queue(memo).trigger(ns, name))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **indexes: Any) -> None:
    """Start the Job informers and wire the queue to the caches (kopf passes every index to
    every handler, by name)."""
    cfg = settings_mod.Settings.from_env()
    settings.posting.level = logging.INFO
    settings.persistence.diffbase_storage = NoDiffBase()
    metrics.serve(cfg.metrics_port)
    # a connection for every pass that may run at once, and for the reads they start
    kube = client.Kube(client.api_client(pool_size=2 * queue_mod.WORKERS), on_call=metrics.count_call)
    rec = reconciler.Reconciler(cfg, kube)
    loop, ready = asyncio.get_running_loop(), asyncio.Event()
    cache = informer.JobCache()
    namespaces: list[str | None] = [*cfg.namespaces] or [None]
    waiting = set(namespaces)

    def synced(ns: str | None) -> None:
        waiting.discard(ns)
        if not waiting:
            loop.call_soon_threadsafe(ready.set)

    watch = client.Kube(client.api_client(pool_size=len(namespaces) + 1), on_call=metrics.count_watch_request)

    def changed(key: informer.Key) -> None:
        loop.call_soon_threadsafe(_spawn, memo, *key)

    memo.informers = [informer.JobInformer(watch, ns, cache, changed, functools.partial(synced, ns))
                      for ns in namespaces]
    memo.forget = rec.forget
    memo.poster = Poster(kube)
    memo.queue = queue_mod.WorkQueue(rec.reconcile, Indexes(indexes["pipelines"], cache).world,
                                     post=memo.poster.post, ready=ready)
    memo.seen = {}
    for each in memo.informers:
        each.start()
    logger.info("tycho operator: namespaces=%s metrics=:%d", ",".join(cfg.namespaces) or "(all)", cfg.metrics_port)


@kopf.on.cleanup()
def cleanup(memo: Any, **_: Any) -> None:
    for each in getattr(memo, "informers", []):
        each.stop()
    _queue(memo).shutdown()
    memo.poster.shutdown()


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
