"""Metric curves: every value a stage reported, with its step, for finished and running runs.

A finished stage's full series is the ``metrics.jsonl`` byproduct its record names (for a
cache hit, the record of the execution it reused: the same curve). A running stage's
series is the live file the stage wrapper publishes (``live/<run>/<stage>.metrics.jsonl``,
at least every 10 s on object stores). Server-side shaping for the board: downsampling
that keeps the shape (largest-triangle-three-buckets), exponential smoothing, and
groups of runs by a param with their mean and spread per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pydantic
from pydantic import alias_generators

from tycho.api import phases
from tycho.index import rows
from tycho.provenance import documents, layout, metrics as metrics_mod, record, store as store_mod

Point = tuple[int, float]


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class Curve(Model):
    run_id: str
    stage: str
    metric: str
    steps: list[int]
    values: list[float]
    live: bool = False
    """Read from the live file of a running stage."""
    points: int = 0
    """How many points the full series has (before downsampling)."""


class Band(Model):
    group: str
    stage: str
    metric: str
    runs: list[str]
    steps: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    """mean ± one standard deviation across the group's runs at each step."""


def _lines(store: store_mod.Store, rel: str) -> list[str] | None:
    try:
        return store.read_bytes(rel).decode(errors="replace").splitlines()
    except (OSError, FileNotFoundError):
        return None


def stage_lines(store: store_mod.Store, summary: documents.RunSummary, stage: str) -> tuple[list[str], bool]:
    """The stage's metric lines and whether they are live (a running stage)."""
    result = summary.stages.get(stage)
    if result is None:
        return [], False
    if result.record and result.phase in phases.DONE:
        try:
            doc = store.read_json(result.record)
        except (OSError, FileNotFoundError, ValueError):
            doc = None
        blob = record.byproduct(doc, "metrics.jsonl") if doc else None
        if blob and blob.get("digest", {}).get("sha256"):
            try:
                return store.get_bytes(blob["digest"]["sha256"]).decode(errors="replace").splitlines(), False
            except (OSError, FileNotFoundError, store_mod.IntegrityError):
                pass
    live = _lines(store, layout.live_metrics_rel(summary.run_id, stage))
    if live is not None:
        return live, result.phase == "Running"
    return [], False


def run_series(store: store_mod.Store, summary: documents.RunSummary) -> dict[str, tuple[dict[str, list[Point]], bool]]:
    """Stage -> (metric -> points, live) for every stage that reported anything."""
    out: dict[str, tuple[dict[str, list[Point]], bool]] = {}
    for stage in rows.stage_order(summary):
        lines, live = stage_lines(store, summary, stage)
        series = metrics_mod.series(lines)
        if series:
            out[stage] = (series, live)
    return out


def lttb(points: Sequence[Point], threshold: int) -> list[Point]:
    """Largest-triangle-three-buckets: ``threshold`` points that keep a curve's shape."""
    n = len(points)
    if threshold >= n or threshold < 3:
        return list(points)
    out = [points[0]]
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        start, end = int(math.floor((i + 1) * every)) + 1, int(math.floor((i + 2) * every)) + 1
        end = min(end, n)
        avg_x = sum(p[0] for p in points[start:end]) / max(end - start, 1)
        avg_y = sum(p[1] for p in points[start:end]) / max(end - start, 1)
        lo, hi = int(math.floor(i * every)) + 1, int(math.floor((i + 1) * every)) + 1
        ax, ay = points[a]
        best, best_area = lo, -1.0
        for j in range(lo, min(hi, n)):
            area = abs((ax - avg_x) * (points[j][1] - ay) - (ax - points[j][0]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        out.append(points[best])
        a = best
    out.append(points[-1])
    return out


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard's slider): 0 = raw."""
    if weight <= 0:
        return list(values)
    weight = min(weight, 0.999)
    out: list[float] = []
    last, debias = 0.0, 0.0
    for v in values:
        last = last * weight + (1 - weight) * v
        debias = debias * weight + (1 - weight)
        out.append(last / debias)
    return out


def shape(points: Sequence[Point], max_points: int, weight: float) -> tuple[list[int], list[float]]:
    """Smooth over the full series, then downsample for the wire."""
    ordered = sorted(points)
    smoothed = smooth([p[1] for p in ordered], weight)
    kept = lttb([(p[0], v) for p, v in zip(ordered, smoothed)], max_points)
    return [p[0] for p in kept], [p[1] for p in kept]


def bands(curves: Mapping[str, Mapping[str, list[Point]]], groups: Mapping[str, str], stage: str,
          metric: str) -> list[Band]:
    """Per group: mean and ± one standard deviation of the runs' values at each step.
    ``curves``: run -> metric -> points (of ``stage``); ``groups``: run -> group label."""
    members: dict[str, list[str]] = {}
    for run, label in groups.items():
        if metric in curves.get(run, {}):
            members.setdefault(label, []).append(run)
    out: list[Band] = []
    for label, run_ids in sorted(members.items()):
        by_step: dict[int, list[float]] = {}
        for run in run_ids:
            for step, value in curves[run][metric]:
                by_step.setdefault(step, []).append(value)
        steps = sorted(by_step)
        mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
        spread = [math.sqrt(sum((v - m) ** 2 for v in by_step[s]) / len(by_step[s])) for s, m in zip(steps, mean)]
        out.append(Band(group=label, stage=stage, metric=metric, runs=run_ids, steps=steps, mean=mean,
                        low=[m - d for m, d in zip(mean, spread)], high=[m + d for m, d in zip(mean, spread)]))
    return out
