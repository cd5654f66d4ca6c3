"""Stage metrics: reading the JSON-lines a stage appends to ``TYCHO_METRICS``, and which
metric is the headline.

The headline rule lives here only: the status column of ``kubectl get xp``, the CLI's run
table, events and the board all rank metrics with ``ranked``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

# Most telling first; a name matches a hint exactly or by containing it.
HEADLINE_HINTS = ("test_accuracy", "accuracy", "f1", "auc", "score")


def _points(lines: Iterable[str]) -> Iterable[dict[str, float | int]]:
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            yield {k: v for k, v in item.items()
                   if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def last_values(lines: Iterable[str]) -> dict[str, float]:
    """Last value of each numeric metric (``step`` is not a metric; bad lines are skipped),
    in the order the names first appeared."""
    last: dict[str, float] = {}
    for point in _points(lines):
        for name, value in point.items():
            if name != "step":
                last[name] = float(value)
    return last


def series(lines: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
    """Every value of each metric with its step (the line's ``step``, else its position)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for index, point in enumerate(_points(lines)):
        step = int(point.get("step", index))
        for name, value in point.items():
            if name != "step":
                out.setdefault(name, []).append((step, float(value)))
    return out


def _rank(name: str) -> int:
    for i, hint in enumerate(HEADLINE_HINTS):
        if name == hint:
            return 2 * i
        if hint in name:
            return 2 * i + 1
    return 2 * len(HEADLINE_HINTS)


def ranked(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    """Metrics most telling first: by headline hint, then the most recently reported."""
    recent_first = list(reversed(list(metrics.items())))
    return sorted(recent_first, key=lambda item: _rank(item[0]))


def headline(metrics: Mapping[str, float], n: int = 3) -> list[tuple[str, float]]:
    return ranked(metrics)[:n]


def pipeline_headline(stage_metrics: Sequence[Mapping[str, float]]) -> tuple[str, float] | None:
    """The run's headline metric from its finished stages (in DAG order): the best-ranked
    name, the latest stage winning among equals."""
    best: tuple[int, int, str, float] | None = None
    for position, metrics in enumerate(stage_metrics):
        for name, value in metrics.items():
            candidate = (_rank(name), -position, name, value)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
    if best is None:
        return None
    if best[0] == 2 * len(HEADLINE_HINTS):  # no hint matched: the last stage's last metric
        last = [m for m in stage_metrics if m][-1]
        name = list(last)[-1]
        return name, last[name]
    return best[2], best[3]


def show(items: Iterable[tuple[str, float]]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in items)
