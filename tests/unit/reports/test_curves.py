"""Curves: full series from records (and live files while running), downsampling, smoothing, groups."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.index import runs_fixture as rf
from tycho.provenance import layout, record, store as store_mod
from tycho.reports import curves


def test_downsampling_keeps_the_ends_and_the_peaks() -> None:
    points = [(i, float(i % 50 == 25) * 10.0) for i in range(1000)]
    kept = curves.lttb(points, 100)
    assert len(kept) == 100 and kept[0] == points[0] and kept[-1] == points[-1]
    assert sum(1 for p in kept if p[1] == 10.0) >= 15  # 20 spikes in the data, nearly all survive


def test_smoothing_is_a_debiased_moving_average() -> None:
    assert curves.smooth([1.0, 1.0, 1.0], 0.9) == [1.0, 1.0, 1.0]
    raw = [0.0, 10.0, 0.0, 10.0]
    smoothed = curves.smooth(raw, 0.5)
    assert curves.smooth(raw, 0) == raw and max(smoothed) < 10 and smoothed[0] == 0


def test_groups_get_a_mean_and_a_spread_per_step() -> None:
    series = {"a": {"loss": [(0, 1.0), (1, 0.5)]}, "b": {"loss": [(0, 3.0), (1, 0.5)]}, "c": {"loss": [(0, 9.0)]}}
    bands = curves.bands(series, {"a": "lr=0.1", "b": "lr=0.1", "c": "lr=1"}, "train", "loss")
    first = bands[0]
    assert (first.group, first.runs, first.steps, first.mean) == ("lr=0.1", ["a", "b"], [0, 1], [2.0, 0.5])
    assert first.low == [1.0, 0.5] and first.high == [3.0, 0.5]


def test_a_finished_stage_reads_its_recorded_series_and_a_running_one_its_live_file(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    lines = "".join(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\n" for i in range(5)).encode()
    blob = store.put_bytes(lines)
    summary = rf.summary("run1")
    doc = {"predicate": {"runDetails": {"byproducts": [{"name": "metrics.jsonl", "digest": {"sha256": blob}}]}}}
    store.write_json(layout.record_rel("run1", "train"), doc)
    assert record.byproduct(doc, "metrics.jsonl")
    found, live = curves.stage_lines(store, summary, "train")
    assert len(found) == 5 and not live
    running = rf.summary("run2", phase="Running")
    store.write_bytes(layout.live_metrics_rel("run2", "evaluate"),
                      b'{"step": 0, "acc": 0.1}\n{"step": 1, "acc": 0.2}\n')
    found, live = curves.stage_lines(store, running, "evaluate")
    assert live and len(found) == 2
