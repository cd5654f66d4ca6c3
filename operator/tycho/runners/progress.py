"""Progress display for local runs: a live stage table on a terminal, plain lines elsewhere.

The local runner reports stage transitions; the executor reports what running stages
print and the metrics they append (latest values shown while they run). Which reporter
is chosen by the CLI (``--json`` and non-terminals get line output on stderr so stdout
stays machine-readable). User text is never read as markup. ``rich.live`` is imported
when a live table starts.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.live import Live

from tycho.provenance import documents, metrics as metrics_mod

ICONS = {"Pending": "·", "Running": "▶", "Succeeded": "✓", "Cached": "↺", "Failed": "✗", "Skipped": "-",
         "Cancelled": "■", "Suspended": "‖"}


def detail(result: documents.StageResult) -> str:
    """One line about a stage: its headline metrics when done, else its message."""
    if result.phase == "Cached":
        return f"cache hit {(result.cache_key or '')[:12]}"
    if result.phase == "Succeeded" and result.metrics:
        return metrics_mod.show(metrics_mod.headline(result.metrics))
    return result.message.splitlines()[0] if result.message else ""


class Reporter(Protocol):
    def start(self, run_id: str, stages: list[str]) -> None: ...
    def stage(self, name: str, result: documents.StageResult) -> None: ...
    def line(self, stage: str, text: str) -> None: ...
    def metrics(self, stage: str, values: dict[str, float]) -> None: ...
    def stop(self) -> None: ...


class LineReporter:
    """One line per stage transition (CI logs, pipes); with ``verbose``, stage output too."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console, self.verbose = console, verbose
        self.lock = threading.Lock()

    def start(self, run_id: str, stages: list[str]) -> None:
        self.console.print(f"run {run_id}: {len(stages)} stages", markup=False, highlight=False)

    def stage(self, name: str, result: documents.StageResult) -> None:
        with self.lock:
            text = f"{ICONS.get(result.phase, '?')} {name:<12} {result.phase:<9} {detail(result)}"
            self.console.print(text, markup=False, highlight=False)

    def line(self, stage: str, text: str) -> None:
        if self.verbose:
            with self.lock:
                self.console.print(f"  [{stage}] {text}", markup=False, highlight=False)

    def metrics(self, stage: str, values: dict[str, float]) -> None:
        if self.verbose:
            self.line(stage, "metrics " + metrics_mod.show(values.items()))

    def stop(self) -> None:
        pass


class LiveReporter:
    """A live table: each stage's state, elapsed time, and its latest metrics or line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, tuple[str, str]] = {}
        self.started: dict[str, float] = {}
        self.last_line: dict[str, str] = {}
        self.latest: dict[str, dict[str, float]] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.run_id = ""

    def _table(self) -> Table:
        table = Table(title=Text(f"run {self.run_id}"), expand=False)
        for col in ("stage", "state", "time", "detail"):
            table.add_column(col)
        with self.lock:
            rows = list(self.rows.items())
        for name, (phase, text) in rows:
            running = phase == "Running"
            elapsed = f"{time.monotonic() - self.started.get(name, time.monotonic()):5.1f}s" if running else ""
            if running and self.latest.get(name):
                text = metrics_mod.show(list(self.latest[name].items())[-4:])
            elif running:
                text = self.last_line.get(name, "")[-60:]
            table.add_row(Text(name), f"{ICONS.get(phase, '?')} {phase}", elapsed, Text(text))
        return table

    def start(self, run_id: str, stages: list[str]) -> None:
        self.run_id = run_id
        self.rows = {s: ("Pending", "") for s in stages}
        from rich.live import Live

        self.live = Live(get_renderable=self._table, console=self.console, refresh_per_second=4)
        self.live.start()

    def stage(self, name: str, result: documents.StageResult) -> None:
        with self.lock:
            if result.phase == "Running":
                self.started[name] = time.monotonic()
            self.rows[name] = (result.phase, detail(result))

    def line(self, stage: str, text: str) -> None:
        if text.strip():
            self.last_line[stage] = text.strip()

    def metrics(self, stage: str, values: dict[str, float]) -> None:
        with self.lock:
            self.latest.setdefault(stage, {}).update(values)

    def stop(self) -> None:
        if self.live:
            self.live.stop()


def choose(console: Console, verbose: bool) -> Reporter:
    if console.is_terminal and not verbose:
        return LiveReporter(console)
    return LineReporter(console, verbose)
