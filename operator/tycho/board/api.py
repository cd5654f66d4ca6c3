"""The board's data, one function per page: what ``/api/...`` serves as JSON and what the
HTML pages render. Every function takes the ``Board`` and plain arguments (parsed from the
URL by ``tycho.board.server``) and returns pydantic models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic
from pydantic import alias_generators

from tycho.api import phases
from tycho.board import graph, state, tables, verification
from tycho.index import lookups, query, rows
from tycho.provenance import documents, media
from tycho.reports import curves as curves_mod, diff as diff_mod, lineage, show, trace as trace_mod

MAX_LOG_BYTES = 2_000_000


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class ListingArgs(Model):
    """A leaderboard view, as kept in the URL (so it can be shared)."""

    filters: list[str] = []
    sort: str = ""
    columns: list[str] = []
    pipeline: str = ""
    since: str = ""
    limit: int = 50
    offset: int = 0
    all: bool = False
    only_changed: bool = False


class RunPage(Model):
    run: show.RunView
    graph: graph.Layout
    verification: verification.Verification
    live: bool
    logs: dict[str, bool]
    """Stage -> whether this board has its log."""


class CurveSet(Model):
    curves: list[curves_mod.Curve]
    bands: list[curves_mod.Band] = []
    metrics: dict[str, list[str]] = {}
    """Stage -> metric names with a series, over the runs asked for."""


class ComparePage(Model):
    comparison: diff_mod.Comparison
    stages: list[diff_mod.StageWhy] = []
    code_files: list[diff_mod.FileDiff] = []
    live: bool = False


class ArtifactPage(Model):
    sha256: str
    media_type: str
    size: int
    table: tables.Table | None = None
    text: str | None = None


def listing(board: state.Board, args: ListingArgs) -> query.Listing:
    columns = args.columns or None
    result = query.list_runs(board.index, filter_texts=args.filters, pipeline=args.pipeline or None,
                             since=args.since or None, sort=args.sort or None, columns=columns,
                             limit=max(1, min(args.limit, 1000)), offset=max(0, args.offset), all_runs=args.all,
                             only_changed=args.only_changed)
    return result


def stage_graph(summary: documents.RunSummary, run_id: str) -> graph.Layout:
    ups = show.upstream_of(summary)
    nodes = []
    for s in rows.ordered(summary):
        sub = phases.label(s.phase)
        if s.phase == "Succeeded" and s.started_at and s.finished_at:
            sub += f" {show.seconds_between(s.started_at, s.finished_at) or 0:.0f}s"
        if s.trials:
            done = sum(t.phase in phases.TRIAL_FINISHED for t in s.trials)
            sub += f" · {done}/{len(s.trials)} trials"
        nodes.append(graph.Node(id=s.name, label=s.name, sub=sub, kind=s.phase, href=f"#stage-{s.name}"))
    return graph.layout(nodes, ups)


def run_page(board: state.Board, run_id: str) -> RunPage:
    summary = board.summary(run_id)
    view = show.view(board.store, summary)
    logs = {s: _log_path(board, run_id, s) is not None for s in summary.stages}
    return RunPage(run=view, graph=stage_graph(summary, run_id), verification=board.verification(run_id, summary),
                   live=summary.phase == "Running", logs=logs)


def run_status(board: state.Board, run_id: str) -> dict[str, Any]:
    """The small part of a run a live page polls: phases, hits, headline metrics."""
    summary = board.summary(run_id)
    view = show.view(board.store, summary, with_artifacts=False)
    return {"runId": run_id, "phase": summary.phase, "message": summary.message,
            "graph": stage_graph(summary, run_id).model_dump(by_alias=True),
            "stages": [s.model_dump(mode="json", by_alias=True) for s in view.stages]}


def _log_path(board: state.Board, run_id: str, stage: str) -> Path | None:
    if board.logs is None or "/" in stage or "/" in run_id or stage.startswith("."):
        return None
    path = board.logs / run_id / f"{stage}.log"
    return path if path.is_file() else None


def log(board: state.Board, run_id: str, stage: str) -> str | None:
    path = _log_path(board, run_id, stage)
    if path is None:
        return None
    data = path.read_bytes()
    cut = data[-MAX_LOG_BYTES:]
    return ("… (earlier lines cut)\n" if len(cut) < len(data) else "") + cut.decode(errors="replace")


def stage_record(board: state.Board, run_id: str, stage: str) -> dict[str, Any]:
    summary = board.summary(run_id)
    result = summary.stages.get(stage)
    if result is None or not result.record:
        raise LookupError(f"stage {stage!r} of run {run_id} has no record (yet)")
    doc: dict[str, Any] = board.store.read_json(result.record)
    return doc


def run_curves(board: state.Board, run_id: str, max_points: int = 500, weight: float = 0.0) -> CurveSet:
    summary = board.summary(run_id)
    out: list[curves_mod.Curve] = []
    names: dict[str, list[str]] = {}
    for stage, (series, live) in curves_mod.run_series(board.store, summary).items():
        names[stage] = list(series)
        for metric, points in series.items():
            steps, values = curves_mod.shape(points, max_points, weight)
            out.append(curves_mod.Curve(run_id=run_id, stage=stage, metric=metric, steps=steps, values=values,
                                        live=live, points=len(points)))
    for result in rows.ordered(summary):  # a sweep: each trial's objective by step, in one picture
        objective = result.selection.metric if result.selection else "objective"
        for trial in result.trials or []:
            if trial.curve:
                steps, values = curves_mod.shape(sorted(trial.curve.items()), max_points, weight)
                out.append(curves_mod.Curve(run_id=run_id, stage=f"{result.name} trials ({objective})",
                                            metric=f"trial {trial.index}", steps=steps, values=values,
                                            live=trial.phase == "Running", points=len(trial.curve)))
    return CurveSet(curves=out, metrics=names)


def compare_curves(board: state.Board, run_ids: Sequence[str], stage: str, metric: str, *, max_points: int = 500,
                   weight: float = 0.0, group_by: str = "") -> CurveSet:
    """One metric of one stage across runs, overlaid; with ``group_by`` a param, also each
    group's mean and spread."""
    series: dict[str, dict[str, list[curves_mod.Point]]] = {}
    names: dict[str, set[str]] = {}
    out: list[curves_mod.Curve] = []
    summaries = {r: board.summary(r) for r in run_ids}
    for run_id, summary in summaries.items():
        for st, (found, live) in curves_mod.run_series(board.store, summary).items():
            curves = {m for m, points in found.items() if len(points) > 1 or live}
            if curves:
                names.setdefault(st, set()).update(curves)
            if st == stage:
                series[run_id] = found
                if metric in found:
                    steps, values = curves_mod.shape(found[metric], max_points, weight)
                    out.append(curves_mod.Curve(run_id=run_id, stage=stage, metric=metric, steps=steps,
                                                values=values, live=live, points=len(found[metric])))
    bands: list[curves_mod.Band] = []
    if group_by:
        labels = {r: _label(_param(s, group_by)) for r, s in summaries.items()}
        bands = curves_mod.bands(series, labels, stage, metric)
        for b in bands:
            kept = curves_mod.lttb(list(zip(b.steps, b.mean)), max_points)
            keep = {p[0] for p in kept}
            idx = [i for i, s in enumerate(b.steps) if s in keep]
            b.steps, b.mean = [b.steps[i] for i in idx], curves_mod.smooth([b.mean[i] for i in idx], weight)
            b.low, b.high = [b.low[i] for i in idx], [b.high[i] for i in idx]
    return CurveSet(curves=out, bands=bands, metrics={k: sorted(v) for k, v in names.items()})


def _param(summary: documents.RunSummary, key: str) -> Any:
    for stage, params in rows.params_of(summary).items():
        for name, value in rows.flatten(stage, params):
            if name == key:
                return value
    return rows.final_metrics(summary).get(key)


def _label(value: Any) -> str:
    return "(none)" if value is None else value if isinstance(value, str) else json.dumps(value)


def compare(board: state.Board, run_ids: Sequence[str]) -> ComparePage:
    if len(run_ids) < 2:
        raise LookupError("compare needs at least two runs (runs=A,B,...)")
    summaries = [board.summary(r) for r in run_ids]
    page = ComparePage(comparison=diff_mod.compare(summaries), live=any(s.phase == "Running" for s in summaries))
    if len(summaries) == 2:
        page.stages = diff_mod.why(summaries[0], summaries[1])
        page.code_files = diff_mod.code_diff(board.store, summaries[0], summaries[1])
    return page


def trials(board: state.Board, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Trials of searches inside the runs, flattened, for the parallel-coordinates view: a
    sweep stage's trials (from the summary), or a stage's own search reported as an output
    named ``trials`` (a list of objects, or an object holding one, like digits' tune)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for run_id in run_ids:
        summary = board.summary(run_id)
        for stage in rows.ordered(summary):
            for trial in stage.trials or []:  # a sweep stage: its trials are recorded in the summary
                if trial.record and trial.record in seen:
                    continue
                seen.add(trial.record or f"{run_id}/{stage.name}/{trial.index}")
                values = {f"{stage.name}.{k}": v for k, v in trial.params.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
                values.update({f"{stage.name}.{k}": v for k, v in trial.metrics.items()})
                if trial.objective is not None:
                    values[f"{stage.name}.objective"] = trial.objective
                out.append({"runId": run_id, "trial": trial.index, "values": values})
            digest = stage.outputs.get("trials")
            if not digest or digest in seen:  # a cache hit shares its trials with the run that made them
                continue
            seen.add(digest)
            try:
                doc = json.loads(board.store.get_bytes(digest))
            except (OSError, ValueError):
                continue
            items = doc.get("trials") if isinstance(doc, dict) else doc
            for i, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict):
                    flat: dict[str, Any] = {}
                    for k, v in rows.flatten(stage.name, item):
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            flat[k.replace(f"{stage.name}.params.", f"{stage.name}.")] = v
                    out.append({"runId": run_id, "trial": i, "values": flat})
    return out


def artifact(board: state.Board, sha256: str) -> tuple[bytes, str]:
    """An artifact's bytes (checked against its digest) and media type."""
    if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
        raise LookupError(f"{sha256!r} is not a sha256 digest")
    data = board.store.get_bytes(sha256)
    return data, media.detect(data[: media.SNIFF_BYTES])


def artifact_page(board: state.Board, sha256: str, declared: str | None = None) -> ArtifactPage:
    data, detected = artifact(board, sha256)
    kind = declared or detected
    text = data[:200_000].decode(errors="replace") if media.is_text(kind) and kind not in (media.HTML,) else None
    return ArtifactPage(sha256=sha256, media_type=kind, size=len(data), table=tables.of(data, kind), text=text)


def lineage_graph(board: state.Board, run_id: str) -> graph.Layout:
    """Every stage execution the run's results came from, back to raw data."""
    summary = board.summary(run_id)
    nodes: dict[str, graph.Node] = {}
    parents: dict[str, list[str]] = {}
    for stage in reversed(rows.ordered(summary)):
        for digest in stage.outputs.values():
            if any(n.endswith(digest) for n in nodes):
                continue
            try:
                steps = lineage.walk(board.store, digest)
            except (LookupError, OSError):
                continue
            for step in steps:
                if step["kind"] == "raw":
                    key = f"raw:{step['sha256']}"
                    nodes.setdefault(key, graph.Node(id=key, label="raw data", sub=step["sha256"][:12] + "…",
                                                     kind="raw", href=f"/downstream?digest={step['sha256']}"))
                    continue
                key = step["record"]
                nodes.setdefault(key, graph.Node(
                    id=key, label=step["stage"], sub=f"{step['run'] or ''}"[-16:], kind="record",
                    href=f"/runs/{step['run']}#stage-{step['stage']}" if step["run"] else ""))
                for inp in step["inputs"]:
                    parents.setdefault(key, []).append(inp["producer"] or f"raw:{inp['sha256']}")
        if len(nodes) > 200:
            break
    return graph.layout(list(nodes.values()), {k: list(dict.fromkeys(v)) for k, v in parents.items()})


def trace(board: state.Board, run_id: str, metric: str) -> trace_mod.Trace:
    return trace_mod.trace(board.store, board.summary(run_id), metric)


def groups(board: state.Board) -> list[lookups.Group]:
    return lookups.same_inputs_different_outputs(board.index)


def downstream(board: state.Board, digest: str) -> lookups.Downstream:
    return lookups.downstream(board.index, digest)

