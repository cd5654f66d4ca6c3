"""From a number on screen back to raw data: which stage reported a metric, its record,
and the lineage walk from that stage's outputs to the raw data digests.

What only content-addressed provenance allows: the board's metric cells link here
(``/trace``), so every value is traceable to data, code and image.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import alias_generators

from tycho.index import rows
from tycho.provenance import documents, store as store_mod
from tycho.reports import lineage


class Trace(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)

    run_id: str
    metric: str
    value: float
    stage: str
    record: str | None
    steps: list[dict[str, Any]]
    """``tycho.reports.lineage.walk`` from the stage's outputs: stages, then raw data."""


def reporting_stage(summary: documents.RunSummary, metric: str) -> str | None:
    """The stage whose value of ``metric`` the run shows: the latest in pipeline order (the
    same rule as the index's final metrics); ``STAGE.METRIC`` names a stage directly."""
    stage_name, _, rest = metric.partition(".")
    if rest and stage_name in summary.stages and rest in summary.stages[stage_name].metrics:
        return stage_name
    found = None
    for stage in rows.ordered(summary):
        if metric in stage.metrics:
            found = stage.name
    return found


def trace(store: store_mod.Store, summary: documents.RunSummary, metric: str) -> Trace:
    stage = reporting_stage(summary, metric)
    if stage is None:
        raise LookupError(f"run {summary.run_id} reports no metric {metric!r}")
    result = summary.stages[stage]
    name = metric.split(".", 1)[1] if metric.startswith(stage + ".") and metric not in result.metrics else metric
    steps: list[dict[str, Any]] = []
    if result.outputs:
        first = sorted(result.outputs)[0]
        steps = lineage.walk(store, result.outputs[first])
    return Trace(run_id=summary.run_id, metric=metric, value=result.metrics[name], stage=stage,
                 record=result.record, steps=steps)
