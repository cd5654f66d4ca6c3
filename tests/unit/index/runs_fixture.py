"""Run summaries written to a real local store, as runs leave them (for index and board tests)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tycho.provenance import documents, layout, runs, store as store_mod

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STAGES = ("prepare", "train", "evaluate")


def stamp(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(run_id: str, *, minute: float = 0, epochs: Any = 10, lr: float = 0.01, accuracy: float | None = 0.9,
            tags: tuple[str, ...] = ("demo",), owner: str = "ana", phase: str = "Succeeded", pipeline: str = "demo",
            cached_from: str | None = None, outputs: Mapping[str, str] | None = None,
            extra_params: Mapping[str, Any] | None = None, data: str = "d" * 64,
            key_salt: str = "") -> documents.RunSummary:
    """A three-stage run. ``cached_from``: every stage a cache hit of that run."""
    manifest = {"spec": {"owner": owner, "tags": list(tags), "stages": [
        {"name": "prepare", "params": {"source": "demo"}, "outputs": ["data"]},
        {"name": "train", "params": {"epochs": epochs, "lr": lr, **(extra_params or {})},
         "inputs": [{"name": "data", "from": "prepare/data"}], "outputs": ["model", "history"]},
        {"name": "evaluate", "params": {}, "inputs": [{"name": "model", "from": "train/model"}],
         "outputs": ["report", {"name": "plot", "mediaType": "image/png"}]},
    ]}}
    model = (outputs or {}).get("model") or f"{abs(hash((epochs, lr, key_salt))) % 10**12:064d}"
    stage_outputs = {"prepare": {"data": data}, "train": {"model": model, "history": "e" * 64},
                     "evaluate": {"report": "f" * 64, "plot": "a" * 64}}
    stages: dict[str, documents.StageResult] = {}
    for i, name in enumerate(STAGES):
        origin = cached_from or run_id
        metrics = {"prepare": {"rows": 100.0}, "train": {"loss": 0.5, "accuracy": 0.8},
                   "evaluate": {"test_accuracy": accuracy} if accuracy is not None else {}}[name]
        inputs = {"prepare": {}, "train": {"data": data}, "evaluate": {"model": model}}[name]
        params = manifest["spec"]["stages"][i]["params"]  # type: ignore[index]
        stages[name] = documents.StageResult(
            name=name, phase="Cached" if cached_from else ("Running" if phase == "Running" and name == "evaluate"
                                                           else "Succeeded"),
            cache_key=f"{name}-{epochs}-{lr}{key_salt}", cache_hit=bool(cached_from),
            key_components={"params": params, "inputs": inputs, "code": "c" * 64, "image": {"reference": "img"},
                            "env": {}, "command": ["python"], "args": []},
            outputs=stage_outputs[name], record=layout.record_rel(origin, name), metrics=metrics,
            started_at=stamp(minute), finished_at=stamp(minute + 1), attempts=1)
    return documents.RunSummary(run_id=run_id, pipeline=pipeline, created_at=stamp(minute),
                                finished_at=None if phase == "Running" else stamp(minute + 3), phase=phase,
                                heartbeat_at=stamp(minute), owner=owner, tags=list(tags), manifest=manifest,
                                runner=documents.Runner(executor="kubernetes" if phase == "Running" else "subprocess"),
                                stages=stages)


def save(store: store_mod.Store, *items: documents.RunSummary) -> None:
    for s in items:
        runs.save(store, s)
