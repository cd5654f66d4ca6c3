"""What the index keeps of one run summary: flat attributes, named values, tags, stages and
the digests each stage read and wrote.

Pure: ``of(summary)`` is the one place that decides how a summary is flattened, so a full
rebuild and an incremental update give the same rows. Value names:

- ``STAGE.PARAM`` (kind ``param``): the stage's params from the run's manifest (nested
  objects flattened with dots, lists kept as JSON text);
- ``METRIC`` (kind ``metric``): the run's final value of a metric, the latest stage in
  pipeline order winning when several report it (the same rule as the headline);
- ``STAGE.METRIC`` (kind ``stage_metric``): each stage's own last value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from tycho.api import phases
from tycho.provenance import documents, layout, metrics as metrics_mod

Kind = Literal["param", "metric", "stage_metric"]


@dataclasses.dataclass(frozen=True)
class Value:
    kind: Kind
    name: str
    num: float | None
    text: str | None


@dataclasses.dataclass(frozen=True)
class StageRow:
    name: str
    position: int
    phase: str
    cache_key: str | None
    cache_hit: bool | None
    record: str | None
    started_at: str | None
    finished_at: str | None
    image_digest: str | None


@dataclasses.dataclass(frozen=True)
class Io:
    digest: str
    stage: str
    role: Literal["in", "out"]
    name: str


@dataclasses.dataclass(frozen=True)
class IndexedRun:
    run_id: str
    pipeline: str
    owner: str
    phase: str
    created_at: str
    finished_at: str | None
    heartbeat_at: str | None
    executor: str
    host: str | None
    pid: int | None
    namespace: str | None
    description: str
    message: str
    reproduces: str | None
    code_digest: str | None
    code_commit: str | None
    spec_digest: str
    stages: int
    executed: int
    hits: int
    headline_name: str | None
    headline_value: float | None
    repeat_of: str | None
    duration: float | None
    tags: tuple[str, ...]
    values: tuple[Value, ...]
    stage_rows: tuple[StageRow, ...]
    io: tuple[Io, ...]


def encode(value: Any) -> tuple[float | None, str | None]:
    """A value as (number, text): numbers sort numerically (integers keep their text, so they
    come back as integers), booleans are 1/0 and true/false, anything else is text or JSON."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, int):
        return float(value), str(value)
    if isinstance(value, float):
        return value, None
    if isinstance(value, str):
        return None, value
    if value is None:
        return None, "null"
    return None, json.dumps(value, sort_keys=True, separators=(",", ":"))


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from flatten(f"{prefix}.{k}", v)
    else:
        yield prefix, value


def stage_order(summary: documents.RunSummary) -> list[str]:
    """Stage names in the pipeline's order (the manifest's; stored summaries sort their keys)."""
    spec = summary.manifest.get("spec", {}).get("stages") if summary.manifest else None
    named = [s["name"] for s in spec or [] if isinstance(s, dict) and s.get("name") in summary.stages]
    return named + [n for n in summary.stages if n not in named]


def ordered(summary: documents.RunSummary) -> list[documents.StageResult]:
    return [summary.stages[n] for n in stage_order(summary)]


def params_of(summary: documents.RunSummary) -> dict[str, dict[str, Any]]:
    """Stage -> params, from the manifest the run recorded (else from its key components)."""
    stages = summary.manifest.get("spec", {}).get("stages") if summary.manifest else None
    if stages:
        return {s["name"]: dict(s.get("params") or {}) for s in stages if isinstance(s, dict) and "name" in s}
    return {n: dict((s.key_components or {}).get("params") or {}) for n, s in summary.stages.items()}


def final_metrics(summary: documents.RunSummary) -> dict[str, float]:
    """Each metric's value from the latest stage (in pipeline order) that reported it."""
    out: dict[str, float] = {}
    for stage in ordered(summary):
        out.update(stage.metrics)
    return out


def repeat_of(summary: documents.RunSummary) -> str | None:
    """For a run that executed nothing (every stage a cache hit), the run that made what its
    last stage reused: ``tycho runs`` folds it into that run unless ``--all``."""
    stages = ordered(summary)
    if not stages or summary.phase != "Succeeded" or any(s.phase != "Cached" for s in stages):
        return None
    for stage in reversed(stages):
        origin = layout.run_of_record(stage.record) if stage.record else None
        if origin and origin != summary.run_id:
            return origin
    return None


def _duration(summary: documents.RunSummary) -> float | None:
    if not summary.finished_at:
        return None
    return (documents.parse_time(summary.finished_at) - documents.parse_time(summary.created_at)).total_seconds()


def of(summary: documents.RunSummary) -> IndexedRun:
    values: list[Value] = []
    for stage_name, params in params_of(summary).items():
        for name, value in flatten(stage_name, params):
            if name != stage_name:
                values.append(Value("param", name, *encode(value)))
    for name, value in final_metrics(summary).items():
        values.append(Value("metric", name, value, None))
    for stage in ordered(summary):
        for name, value in stage.metrics.items():
            values.append(Value("stage_metric", f"{stage.name}.{name}", value, None))
    done = [s.metrics for s in ordered(summary) if s.phase in phases.DONE]
    best = metrics_mod.pipeline_headline(done)
    stage_rows: list[StageRow] = []
    io: list[Io] = []
    for position, s in enumerate(ordered(summary)):
        name = s.name
        stage_rows.append(StageRow(name, position, s.phase, s.cache_key, s.cache_hit, s.record, s.started_at,
                                   s.finished_at, s.image.digest if s.image else None))
        for input_name, digest in ((s.key_components or {}).get("inputs") or {}).items():
            if isinstance(digest, str):
                io.append(Io(digest, name, "in", input_name))
        for output, digest in s.outputs.items():
            io.append(Io(digest, name, "out", output))
    return IndexedRun(
        run_id=summary.run_id, pipeline=summary.pipeline, owner=summary.owner, phase=summary.phase,
        created_at=summary.created_at, finished_at=summary.finished_at, heartbeat_at=summary.heartbeat_at,
        executor=summary.runner.executor, host=summary.runner.host, pid=summary.runner.pid,
        namespace=summary.runner.namespace, description=summary.description, message=summary.message,
        reproduces=summary.reproduces, code_digest=summary.code.digest if summary.code else None,
        code_commit=summary.code.commit if summary.code else None, spec_digest=summary.spec_digest,
        stages=len(summary.stages), executed=sum(s.phase == "Succeeded" for s in summary.stages.values()),
        hits=sum(s.phase == "Cached" for s in summary.stages.values()),
        headline_name=best[0] if best else None, headline_value=best[1] if best else None,
        repeat_of=repeat_of(summary), duration=_duration(summary), tags=tuple(dict.fromkeys(summary.tags)),
        values=tuple(_unique(values)), stage_rows=tuple(stage_rows), io=tuple(dict.fromkeys(io)))


def _unique(values: list[Value]) -> Iterator[Value]:
    seen: set[tuple[str, str]] = set()
    for v in values:
        if (v.kind, v.name) not in seen:
            seen.add((v.kind, v.name))
            yield v
