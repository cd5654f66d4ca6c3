"""Follows a stage's metrics file while it runs: echoes new values (the local progress
display reads them), publishes the file to ``live/`` so a running stage's curves reach
the board, and applies a sweep trial's early-stopping rule."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tycho.provenance import layout, metrics as metrics_mod, store as store_mod
from tycho.stage.invocation import Invocation
from tycho.stage.work import Log, read_regular

LIVE_SECONDS = 10.0
"""How often a stage on an object store publishes its growing metrics file."""
LOCAL_LIVE_SECONDS = 2.0
"""The same for a local store (cheap to write)."""
METRICS_PREFIX = "[tycho] metrics "
"""The line a stage's log carries for each new metric values (read by tycho.executors.process)."""


class MetricsFollower:
    """One stage's metrics file, read as it grows (``stopped``: the step at which the
    trial's stop rule stopped it)."""

    def __init__(self, inv: Invocation, store: store_mod.Store | None, path: Path, log: Log) -> None:
        self.inv, self.store, self.path, self.log = inv, store, path, log
        self.offset = 0
        self.published = 0.0
        self.size = 0
        self.best: float | None = None
        self.stopped: int | None = None

    def _check(self, line: str) -> None:
        rule = self.inv.stop_rule
        if rule is None or self.stopped is not None:
            return
        better = max if rule.goal == "maximize" else min
        for step, value in metrics_mod.series([line]).get(rule.metric, []):
            self.best = value if self.best is None else better(self.best, value)
            bar = rule.thresholds.get(step)
            if bar is not None and self.best != bar and better(self.best, bar) == bar:
                self.stopped = step
                self.log(f"[tycho] stopping early at step {step}: best {rule.metric} so far {self.best:.6g} "
                         f"is worse than the median of earlier trials, {bar:.6g}")

    def poll(self, final: bool = False) -> None:
        try:
            chunk = read_regular(self.path, self.offset)
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            values = metrics_mod.last_values([line])
            if values:
                self.log(METRICS_PREFIX + json.dumps(values))
            self._check(line)
        interval = LOCAL_LIVE_SECONDS if self.store is not None and self.store.local else LIVE_SECONDS
        if self.store is not None and (final or time.monotonic() - self.published >= interval) \
                and self.offset != self.size:
            self.size, self.published = self.offset, time.monotonic()
            try:
                self.store.write_bytes(layout.live_metrics_rel(self.inv.run_id, self.inv.stage, self.inv.trial),
                                       read_regular(self.path)[: self.offset])
            except OSError as err:
                self.log(f"[tycho] could not publish live metrics: {err}")
