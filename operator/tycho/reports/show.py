"""``tycho show RUN`` and the board's run page: one run as a person reads it.

Built from the run summary (the truth), the manifest it recorded (declared media types,
which outputs feed which stage), and the first bytes of each output (detected media
types). ``view`` is a pydantic model: the CLI prints it, ``/api/runs/RUN`` serves it.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import alias_generators

from tycho.api import phases
from tycho.index import rows
from tycho.provenance import documents, layout, media, metrics as metrics_mod, store as store_mod, tree


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class Artifact(Model):
    stage: str
    name: str
    sha256: str
    media_type: str
    size: int | None = None
    uri: str
    """Store path (objects/sha256/HEX)."""
    directory: bool = False
    files: list[dict[str, Any]] = []
    """For a directory output: its tree's entries (path, sha256, size)."""
    deliverable: bool = False
    """No stage of the pipeline reads it: a result of the run (report, registry entry...)."""


class StageView(Model):
    name: str
    phase: str
    cache_hit: bool | None
    executed: bool
    seconds: float | None
    attempts: int
    headline: dict[str, float]
    metrics: dict[str, float]
    message: str
    record: str | None
    reused_from: str | None
    """For a cache hit, the run whose execution made the outputs."""
    cache_key: str | None
    execution: str | None
    image: documents.ImageRef | None
    upstream: list[str]
    artifacts: list[Artifact]
    trials: list[documents.TrialResult] | None = None
    """A sweep's trials (each an execution with its own params, key, record and outputs)."""
    selection: documents.Selection | None = None
    checks: list[documents.Check] = []
    """What the stage reported about its data or model (docs/checks.md)."""


class RunView(Model):
    run_id: str
    pipeline: str
    phase: str
    message: str
    owner: str
    tags: list[str]
    description: str
    created_at: str
    finished_at: str | None
    seconds: float | None
    executor: str
    store: str
    reproduces: str | None
    code: documents.CodeRef | None
    headline: dict[str, float]
    executed: int
    hits: int
    stages: list[StageView]


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (documents.parse_time(end) - documents.parse_time(start)).total_seconds()


def declared_outputs(summary: documents.RunSummary) -> dict[tuple[str, str], dict[str, Any]]:
    """(stage, output) -> the output's manifest entry (type, mediaType)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for stage in summary.manifest.get("spec", {}).get("stages", []) if summary.manifest else []:
        for o in stage.get("outputs", []):
            entry = {"name": o} if isinstance(o, str) else dict(o)
            out[(stage.get("name", ""), entry["name"])] = entry
    return out


def upstream_of(summary: documents.RunSummary) -> dict[str, list[str]]:
    """Stage -> the stages whose outputs it reads, from the recorded manifest."""
    found: dict[str, list[str]] = {}
    for stage in summary.manifest.get("spec", {}).get("stages", []) if summary.manifest else []:
        sources = [i["from"].split("/")[0] for i in stage.get("inputs", []) if isinstance(i, dict) and i.get("from")]
        found[stage.get("name", "")] = list(dict.fromkeys(sources))
    return found


def consumed(summary: documents.RunSummary) -> set[str]:
    return {str(i["from"]) for s in summary.manifest.get("spec", {}).get("stages", []) if summary.manifest
            for i in s.get("inputs", []) if isinstance(i, dict) and i.get("from")}


_DETECTED: dict[tuple[str, str], str] = {}
"""(store URL, sha256) -> detected media type: content-addressed bytes never change."""


def media_type_of(store: store_mod.Store, sha256: str, declared: str | None = None, directory: bool = False) -> str:
    if declared:
        return declared
    if directory:
        return media.TREE
    known = _DETECTED.get((store.url, sha256))
    if known is not None:
        return known
    try:
        with store.fs.open(f"{store.root}/{layout.object_rel(sha256)}", "rb") as f:
            head = f.read(media.SNIFF_BYTES)
    except (OSError, FileNotFoundError):
        return media.BINARY
    found = media.detect(bytes(head))
    if len(_DETECTED) > 100_000:
        _DETECTED.clear()
    _DETECTED[(store.url, sha256)] = found
    return found


def _size(store: store_mod.Store, sha256: str) -> int | None:
    try:
        return int(store.fs.size(f"{store.root}/{layout.object_rel(sha256)}"))
    except (OSError, FileNotFoundError):
        return None


def artifacts(store: store_mod.Store, summary: documents.RunSummary, stage: str) -> list[Artifact]:
    declared = declared_outputs(summary)
    used = consumed(summary)
    found: list[Artifact] = []
    for name, digest in summary.stages[stage].outputs.items():
        entry = declared.get((stage, name), {})
        directory = entry.get("type") == "directory"
        files: list[dict[str, Any]] = []
        if directory:
            try:
                files = [e.model_dump() for e in tree.load(store, digest).entries]
            except (OSError, ValueError, FileNotFoundError):
                files = []
        found.append(Artifact(stage=stage, name=name, sha256=digest, directory=directory, files=files,
                              media_type=media_type_of(store, digest, entry.get("mediaType"), directory),
                              size=_size(store, digest), uri=layout.object_rel(digest),
                              deliverable=f"{stage}/{name}" not in used))
    return found


def checks_of(result: documents.StageResult) -> list[documents.Check]:
    """A stage's checks, each naming the stage (a sweep's: every trial's)."""
    return [c.model_copy(update={"stage": result.name}) for c in result.checks]


def run_checks(summary: documents.RunSummary) -> list[documents.Check]:
    """Every check a run's stages reported, in stage order (``tycho checks RUN``)."""
    return [c for s in rows.ordered(summary) for c in checks_of(s)]


def view(store: store_mod.Store, summary: documents.RunSummary, with_artifacts: bool = True) -> RunView:
    ups = upstream_of(summary)
    stages: list[StageView] = []
    for s in rows.ordered(summary):
        name = s.name
        reused = layout.run_of_record(s.record) if s.record and s.phase == "Cached" else None
        stages.append(StageView(
            name=name, phase=s.phase, cache_hit=s.cache_hit, executed=s.phase == "Succeeded",
            seconds=None if s.phase == "Cached" else seconds_between(s.started_at, s.finished_at),
            attempts=s.attempts, headline=dict(metrics_mod.headline(s.metrics)), metrics=s.metrics,
            message=s.message, record=s.record, reused_from=reused if reused != summary.run_id else None,
            cache_key=s.cache_key, execution=s.execution, image=s.image, upstream=ups.get(name, []),
            artifacts=artifacts(store, summary, name) if with_artifacts else [], trials=s.trials,
            selection=s.selection, checks=checks_of(s)))
    best = metrics_mod.pipeline_headline([s.metrics for s in rows.ordered(summary) if s.phase in phases.DONE])
    return RunView(
        run_id=summary.run_id, pipeline=summary.pipeline, phase=summary.phase, message=summary.message,
        owner=summary.owner, tags=summary.tags, description=summary.description, created_at=summary.created_at,
        finished_at=summary.finished_at, seconds=seconds_between(summary.created_at, summary.finished_at),
        executor=summary.runner.executor, store=summary.store or store.url, reproduces=summary.reproduces,
        code=summary.code, headline=dict([best]) if best else {},
        executed=sum(s.phase == "Succeeded" for s in summary.stages.values()),
        hits=sum(s.phase == "Cached" for s in summary.stages.values()), stages=stages)
