"""Prometheus metrics of the operator, served on ``/metrics`` (Settings.metrics_port).

The reconciler reports into this module after every reconcile; the stage gauge is kept
per pipeline and summed, so a deleted pipeline's stages drop out of it.
"""

from __future__ import annotations

import collections
import threading

import prometheus_client as prom

from tycho.api import phases, status as xp

RECONCILE_SECONDS = prom.Histogram(
    "tycho_reconcile_duration_seconds", "Time to reconcile one pipeline (read, plan, apply).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RECONCILE_ERRORS = prom.Counter("tycho_reconcile_errors_total", "Reconciles that failed and were retried.")
STAGES = prom.Gauge("tycho_stages", "Stages of all watched pipelines by phase.", ["phase"])
CACHE_HITS = prom.Counter("tycho_cache_hits_total", "Stages satisfied from the cache (no Job created).")
JOBS_CREATED = prom.Counter("tycho_jobs_created_total", "Stage Jobs created.")
API_CALLS = prom.Counter("tycho_api_calls_total", "Requests the operator sent to the API server.", ["verb"])
WATCH_REQUESTS = prom.Counter("tycho_watch_requests_total", "LIST and WATCH requests of the Job informer "
                               "(what keeps its cache current; no reconcile makes these).", ["verb"])
STAGE_FAILURES = prom.Counter("tycho_stage_failures_total", "Stages that failed after their retries.")

_lock = threading.Lock()
_by_pipeline: dict[str, collections.Counter[str]] = {}


def serve(port: int) -> None:
    """Start the /metrics HTTP server (a daemon thread)."""
    prom.start_http_server(port)


def observe_stages(pipeline_key: str, status: xp.Status | None) -> None:
    """Replace one pipeline's contribution to the stage gauge (None: pipeline gone)."""
    with _lock:
        if status is None:
            _by_pipeline.pop(pipeline_key, None)
        else:
            _by_pipeline[pipeline_key] = collections.Counter(s.phase for s in status.stages)
        total: collections.Counter[str] = collections.Counter()
        for counts in _by_pipeline.values():
            total.update(counts)
    for phase in phases.STAGE_PHASES:
        STAGES.labels(phase=phase).set(total.get(phase, 0))


def count_transitions(old: xp.Status, new: xp.Status) -> None:
    before = {s.name: s.phase for s in old.stages} if old.run_id == new.run_id else {}
    for stage in new.stages:
        if before.get(stage.name) != stage.phase:
            if stage.phase == "Cached":
                CACHE_HITS.inc()
            elif stage.phase == "Failed":
                STAGE_FAILURES.inc()


def count_call(verb: str) -> None:
    API_CALLS.labels(verb=verb).inc()


def count_watch_request(verb: str) -> None:
    WATCH_REQUESTS.labels(verb=verb).inc()
