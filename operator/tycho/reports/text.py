"""Terminal renderings of run listings, single runs and diffs (``tycho runs|show|diff``).

Every value printed comes from the user's runs (names, params, messages): it is escaped
or printed with markup off, never read as rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tycho.api import phases
from tycho.provenance import metrics as metrics_mod

if TYPE_CHECKING:
    from tycho.index import query
    from tycho.provenance import documents
    from tycho.reports import diff as diff_mod, show as show_mod

PHASE_STYLE = {"Succeeded": "green", "Cached": "cyan", "Failed": "red", "Running": "yellow", "Lost": "magenta",
               "Cancelled": "yellow", "Superseded": "dim"}


def cell(value: Any) -> str:
    """One value as a table cell: numbers to 4 significant digits, lists joined, JSON for the rest."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
        return metrics_mod.show(value.items())
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def listing(result: query.Listing) -> RenderableType:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("run", no_wrap=True, min_width=max([len(r.run_id) for r in result.runs] or [3]))
    for col in result.columns:
        table.add_column(escape(col.key), justify="right" if col.kind in ("metric", "stage_metric") else "left")
    for run in result.runs:
        label = Text(run.run_id)
        if run.repeats:
            label.append(f" (+{run.repeats} repeat{'s' if run.repeats > 1 else ''})", style="dim")
        cells: list[Text | str] = [label]
        for col in result.columns:
            text = cell(run.values.get(col.key))
            if col.name in ("created_at", "finished_at") and text:
                text = text[:16].replace("T", " ")
            cells.append(Text(text, style=PHASE_STYLE.get(text, "")) if col.name == "phase" else Text(text))
        table.add_row(*cells)
    parts: list[RenderableType] = [table]
    shown = f"{len(result.runs)} of {result.total} runs" if result.total > len(result.runs) else f"{result.total} runs"
    notes = [shown, f"sorted by {result.sort}"]
    if result.hidden:
        notes.append("same in all: " + ", ".join(result.hidden))
    parts.append(Text("; ".join(notes), style="dim"))
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def run(view: show_mod.RunView) -> RenderableType:
    head = Text()
    head.append(f"{view.pipeline} — run {view.run_id} — ", style="bold")
    head.append(view.phase, style=PHASE_STYLE.get(view.phase, ""))
    lines: list[RenderableType] = [head]
    facts = [f"created {view.created_at}", f"owner {view.owner or '-'}", f"executor {view.executor}"]
    if view.seconds is not None:
        facts.append(f"took {view.seconds:.1f}s")
    if view.tags:
        facts.append("tags " + ",".join(view.tags))
    lines.append(Text("  ".join(facts)))
    if view.description:
        lines.append(Text(view.description, style="dim"))
    if view.code:
        lines.append(Text(f"code sha256:{view.code.digest[:16]}… commit {view.code.commit or '?'}"
                          + (" (dirty)" if view.code.dirty else "")))
    if view.headline:
        lines.append(Text("headline " + metrics_mod.show(view.headline.items()), style="bold"))
    if view.message:
        lines.append(Text(view.message, style="yellow"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("stage", "state", "time", "metrics", "record"):
        table.add_column(col)
    for s in view.stages:
        state = phases.label(s.phase)
        if s.reused_from:
            state += f" (from {s.reused_from})"
        if s.attempts > 1:
            state += f" ({s.attempts} attempts)"
        table.add_row(Text(s.name), Text(state, style=PHASE_STYLE.get(s.phase, "")),
                      Text(f"{s.seconds:.1f}s" if s.seconds is not None else ""),
                      Text(metrics_mod.show(s.headline.items())), Text(s.record or ""))
    lines.append(table)
    arts = Table(box=None, pad_edge=False, header_style="bold", title="artifacts", title_justify="left")
    for col in ("output", "type", "size", "sha256"):
        arts.add_column(col)
    for s in view.stages:
        for a in s.artifacts:
            arts.add_row(Text(f"{a.stage}/{a.name}" + (" *" if a.deliverable else "")), Text(a.media_type),
                         Text(_bytes(a.size)), Text(a.sha256[:16] + "…"))
    lines.append(arts)
    found = [c for s in view.stages for c in s.checks]
    if found:
        lines.append(checks(found))
    trials = [(s.name, t) for s in view.stages for t in s.trials or []]
    if trials:
        table = Table(box=None, pad_edge=False, header_style="bold", title="trials", title_justify="left")
        for col in ("stage", "trial", "state", "params", "objective"):
            table.add_column(col)
        for name, t in trials:
            pick = next((s.selection for s in view.stages if s.name == name and s.selection), None)
            mark = " ←" if pick is not None and pick.trial == t.index else ""
            table.add_row(Text(name), Text(str(t.index) + mark), Text(t.phase, style=PHASE_STYLE.get(t.phase, "")),
                          Text(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in sorted(t.params.items()))),
                          Text("" if t.objective is None else f"{t.objective:.4g}"))
        lines.append(table)
    lines.append(Text(f"store {view.store}  (* = a result no stage reads; records are store paths)", style="dim"))
    return Group(*lines)


def checks(found: list[documents.Check]) -> RenderableType:
    """Checks with their codes: warnings yellow, failures red."""
    table = Table(box=None, pad_edge=False, header_style="bold", title="checks", title_justify="left")
    for col in ("stage", "code", "severity", "message"):
        table.add_column(col)
    for c in found:
        table.add_row(Text(c.stage), Text(c.code, style="bold"),
                      Text(c.severity, style="red" if c.severity == "fail" else "yellow"), Text(c.message))
    return table


def _bytes(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return ""


def rundiff(result: diff_mod.RunDiff, everything: bool = False) -> RenderableType:
    parts: list[RenderableType] = [Text(f"diff {result.a} → {result.b}", style="bold")]
    for section in result.comparison.sections:
        rows = section.rows if everything else section.changed
        if not rows:
            continue
        table = Table(box=None, pad_edge=False, header_style="bold", title=section.title, title_justify="left",
                      title_style="bold cyan")
        table.add_column("")
        table.add_column(result.a)
        table.add_column(result.b)
        if section.name == "metrics":
            table.add_column("delta", justify="right")
        for row in rows:
            values = [Text(_short(section.name, v)) for v in row.values]
            extra = []
            if section.name == "metrics":
                d = row.deltas[1] if len(row.deltas) > 1 else None
                extra = [Text("" if d is None else f"{d:+.4g}", style="green" if (d or 0) > 0 else "red" if d else "")]
            table.add_row(Text(row.key), *values, *extra)
        parts.append(table)
    parts.append(Text("Why stages executed", style="bold cyan"))
    for why in result.stages:
        style = "yellow" if why.executed else "dim"
        parts.append(Text(f"  {why.stage:<12} {why.reason}", style=style))
    if result.code_files:
        parts.append(Text("Code", style="bold cyan"))
        for f in result.code_files:
            parts.append(Text(f"  {f.status:<9} {f.path}"))
        for f in result.code_files:
            if f.diff:
                parts.append(_colour_diff(f.diff.splitlines()))
                if f.truncated:
                    parts.append(Text("  … (diff truncated)", style="dim"))
    return Group(*parts)


def _short(section: str, value: Any) -> str:
    text = cell(value)
    if section == "data" and isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"
    return text if len(text) <= 60 else text[:57] + "…"


def _colour_diff(lines: Iterable[str]) -> Text:
    out = Text()
    for line in lines:
        style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                 else "cyan" if line.startswith("@") else "")
        out.append(line + "\n", style=style)
    return out

