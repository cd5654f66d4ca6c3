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


def _slim(body: Mapping[str, Any], *, spec: bool) -> dict[str, Any]:
    """What a reconcile reads of an object: the index keeps only this."""
    meta = body.get("metadata", {})
    out: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation", "labels", "annotations",
                                          "ownerReferences", "creationTimestamp", "deletionTimestamp")
                     if meta.get(k) is not None},
        "status": dict(body.get("status") or {}),
    }
    if spec:
        out["spec"] = dict(body.get("spec") or {})
    return out


@kopf.index(models.GROUP, models.VERSION, models.PLURAL)
def pipelines(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", name): _slim(body, spec=True)}


JOB_STATUS = ("active", "failed", "succeeded", "startTime", "completionTime")
JOB_CONDITION = ("type", "status", "reason", "message", "lastTransitionTime")


@kopf.index("batch", "v1", "jobs", labels={naming.LABEL_PIPELINE: kopf.PRESENT})
def pipeline_jobs(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """A Job as ``tycho.kube.observe`` reads it, and nothing more: the index holds every stage
    Job of every pipeline for as long as it exists (thousands), so each entry is kept small."""
    job = _slim(body, spec=False)
    meta, status = job["metadata"], job["status"]
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith(naming.PREFIX)}
    job["status"] = {k: status[k] for k in JOB_STATUS if k in status}
    if ended := [{k: c[k] for k in JOB_CONDITION if k in c} for c in status.get("conditions") or []
                 if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]:
        job["status"]["conditions"] = ended
    pod = body.get("spec", {}).get("template", {}).get("spec", {})
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    stage = [c for c in containers if c.get("name") == "stage"] or containers[:1]
    job["spec"] = {"template": {"spec": {"containers": [{"image": c.get("image")} for c in stage[:1]]}}}
    return {(namespace or "", labels[naming.LABEL_PIPELINE]): job}


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
