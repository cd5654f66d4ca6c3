"""Progress display for local runs: a live stage table on a terminal, plain lines elsewhere.

The local runner calls a ``Reporter``; which one is chosen by the CLI (``--json`` and
non-terminals get line output on stderr so stdout stays machine-readable).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

ICONS = {"Pending": "·", "Running": "▶", "Succeeded": "✓", "Cached": "↺", "Failed": "✗", "Skipped": "-"}


class Reporter(Protocol):
    def start(self, run_id: str, stages: list[str]) -> None: ...
    def stage(self, name: str, phase: str, detail: str = "") -> None: ...
    def log(self, name: str, line: str) -> None: ...
    def stop(self) -> None: ...


class LineReporter:
    """One line per stage transition (CI logs, pipes)."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console, self.verbose = console, verbose
        self.lock = threading.Lock()

    def start(self, run_id: str, stages: list[str]) -> None:
        self.console.print(f"run {run_id}: {len(stages)} stages")

    def stage(self, name: str, phase: str, detail: str = "") -> None:
        with self.lock:
            self.console.print(f"{ICONS.get(phase, '?')} {name:<12} {phase:<9} {detail}", highlight=False)

    def log(self, name: str, line: str) -> None:
        if self.verbose:
            with self.lock:
                self.console.print(f"  [{name}] {line}", markup=False, highlight=False)

    def stop(self) -> None:
        pass


class LiveReporter:
    """A live table: each stage's state, elapsed time and latest detail."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, list[str]] = {}
        self.started: dict[str, float] = {}
        self.last_line: dict[str, str] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.run_id = ""

    def _table(self) -> Table:
        table = Table(title=f"run {self.run_id}", expand=False)
        for col in ("stage", "state", "time", "detail"):
            table.add_column(col)
        for name, (phase, detail) in self.rows.items():
            elapsed = f"{time.monotonic() - self.started[name]:5.1f}s" if phase == "Running" else ""
            shown = self.last_line.get(name, "")[-60:] if phase == "Running" else detail
            table.add_row(name, f"{ICONS.get(phase, '?')} {phase}", elapsed, shown)
        return table

    def start(self, run_id: str, stages: list[str]) -> None:
        self.run_id = run_id
        self.rows = {s: ["Pending", ""] for s in stages}
        self.live = Live(get_renderable=self._table, console=self.console, refresh_per_second=4)
        self.live.start()

    def stage(self, name: str, phase: str, detail: str = "") -> None:
        with self.lock:
            if phase == "Running":
                self.started[name] = time.monotonic()
            self.rows[name] = [phase, detail]

    def log(self, name: str, line: str) -> None:
        if line.strip():
            self.last_line[name] = line.strip()

    def stop(self) -> None:
        if self.live:
            self.live.stop()


def choose(console: Console, verbose: bool) -> Reporter:
    if console.is_terminal and not verbose:
        return LiveReporter(console)
    return LineReporter(console, verbose)
