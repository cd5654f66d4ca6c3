"""kopf wiring only: which watch event triggers which reconcile.

Pipelines: kopf's change handlers (create, update, resume after an operator restart) run a
reconcile and let kopf retry it on errors (``kopf.TemporaryError``). Jobs: a watch on
batch/v1 Jobs labelled ``tycho.dev/pipeline`` reconciles the owning pipeline whenever a
Job's state changes; Jobs are followed by watching, never by polling.

No ``@kopf.on.delete`` handler, timer or daemon on pipelines: each would make kopf add a
finalizer, and a finalizer wedges ``kubectl delete`` while the operator is down. Deleting
a pipeline needs no operator at all: its Jobs go with it through owner references.
kopf's own bookkeeping is kept in annotations, because the status schema is strict.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from tycho import settings as settings_mod
from tycho.api import models
from tycho.kube import client, events, metrics, naming, observe, reconciler, workqueue

RETRY_DELAY = 10
Logger = logging.Logger | logging.LoggerAdapter[Any]


def _post(ref: dict[str, Any], event: events.Event) -> None:
    kopf.event(cast(kopf.Body, ref), type=event.type, reason=event.reason, message=event.message)


def _queue(memo: Any) -> workqueue.WorkQueue:
    queue: workqueue.WorkQueue = memo.queue
    return queue


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    cfg = settings_mod.Settings.from_env()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=naming.PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.INFO
    metrics.serve(cfg.metrics_port)
    rec = reconciler.Reconciler(cfg, client.Kube(client.api_client()))
    memo.queue = workqueue.WorkQueue(rec, post=_post)
    logger.info("tycho operator: namespaces=%s metrics=:%d", ",".join(cfg.namespaces) or "(all)", cfg.metrics_port)


@kopf.on.cleanup()
def cleanup(memo: Any, **_: Any) -> None:
    _queue(memo).shutdown()


@kopf.on.resume(models.GROUP, models.VERSION, models.PLURAL)
@kopf.on.create(models.GROUP, models.VERSION, models.PLURAL)
@kopf.on.update(models.GROUP, models.VERSION, models.PLURAL)
async def pipeline_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    try:
        await _queue(memo).trigger(namespace or "", name, propagate=True)
    except client.ApiError as err:
        raise kopf.TemporaryError(f"API server: {err}", delay=RETRY_DELAY) from err
    except Exception as err:  # store unreachable, transient I/O: kopf retries
        raise kopf.TemporaryError(f"{type(err).__name__}: {err}", delay=RETRY_DELAY) from err


@kopf.on.event(models.GROUP, models.VERSION, models.PLURAL)
async def pipeline_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    if event["type"] == "DELETED":
        _queue(memo).forget(namespace or "", name)


@kopf.on.event("batch", "v1", "jobs", labels={naming.LABEL_PIPELINE: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                    memo: Any, **_: Any) -> None:
    queue = _queue(memo)
    gone = event["type"] == "DELETED"
    if queue.job_changed(str(body.metadata.uid), None if gone else observe.fingerprint(body)):
        await queue.trigger(namespace or "", labels[naming.LABEL_PIPELINE])
