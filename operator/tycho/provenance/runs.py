"""Run summaries: one document per pipeline run, indexed per pipeline in time order.

Written by the runners as a run progresses; read by ``explain`` (the last run's key
components), ``reproduce`` (the manifest, code and digests of a past run) and ``runs``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from tycho.provenance import store as store_mod


def new_run_id(pipeline: str, when: dt.datetime | None = None) -> str:
    """Sortable and unique: ``<pipeline>-<UTC yyyymmdd-hhmmss>-<4 hex>``."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return f"{pipeline}-{when.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def summary_rel(run_id: str) -> str:
    return f"runs/{run_id}.json"


def save(store: store_mod.Store, summary: dict[str, Any]) -> str:
    """Write (or update) a run summary and make sure the pipeline index lists it."""
    uri = store.write_json(summary_rel(summary["runId"]), summary)
    marker = f"pipelines/{summary['pipeline']}/runs/{summary['createdAt']}_{summary['runId']}.json"
    if not store.exists(marker):
        store.write_json(marker, {"runId": summary["runId"]})
    return uri


def load(store: store_mod.Store, run_id: str) -> dict[str, Any]:
    rel = summary_rel(run_id)
    if not store.exists(rel):
        raise LookupError(f"no run {run_id!r} in {store.url} (list runs with `tycho runs`)")
    doc: dict[str, Any] = store.read_json(rel)
    return doc


def run_ids(store: store_mod.Store, pipeline: str | None = None) -> list[str]:
    """Run ids, oldest first, of one pipeline or of all."""
    pipelines = [pipeline] if pipeline else store.list("pipelines")
    entries: list[str] = []
    for name in pipelines:
        entries += store.list(f"pipelines/{name}/runs")
    entries.sort()
    return [e.split("_", 1)[1].removesuffix(".json") for e in entries]


def latest(store: store_mod.Store, pipeline: str, exclude: str | None = None) -> dict[str, Any] | None:
    """The newest run summary of a pipeline, if any."""
    for run_id in reversed(run_ids(store, pipeline)):
        if run_id != exclude:
            return load(store, run_id)
    return None
