"""``tycho explain``: per stage, hit or miss, and for a miss what changed since the last run.

Compares the cache-key components the planner computes now with those recorded in the
pipeline's latest run summary, so the answer is "params.epochs: 30 -> 2", not just "miss".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tycho.api import models
from tycho.planning import cachekey, plan
from tycho.provenance import code as code_mod, runs, store as store_mod
from tycho.runners import resolve


def explain(pipeline: models.ExperimentPipeline, store_url: str, manifest_dir: Path) -> list[dict[str, Any]]:
    store = store_mod.Store(store_url)
    root = resolve.code_root(pipeline, manifest_dir)
    code_digest = code_mod.digest(root)
    images = {s.name: resolve.local_image(s) for s in pipeline.spec.stages}
    decisions = plan.simulate(pipeline.spec, images=images, code_digest=code_digest,
                              external=resolve.external_digests(pipeline), lookup=resolve.lookup(store))
    last = runs.latest(store, pipeline.metadata.name)
    rows: list[dict[str, Any]] = []
    for d in decisions:
        row: dict[str, Any] = {"stage": d.stage, "action": d.action, "reason": d.reason, "cacheKey": d.key,
                               "changed": [], "lastRun": last["runId"] if last else None}
        previous = (last or {}).get("stages", {}).get(d.stage, {}).get("keyComponents")
        if d.action == "run" and d.components is not None:
            if previous:
                row["changed"] = cachekey.changed(previous, d.components)
                if not row["changed"]:
                    row["reason"] = "same key as the last run, but its outputs are missing or corrupted in the store"
            else:
                row["reason"] = "no earlier run of this pipeline recorded this stage"
        elif d.action == "wait":
            row["reason"] = d.reason + " (its key depends on outputs not produced yet)"
            if previous:
                stage = next(s for s in pipeline.spec.stages if s.name == d.stage)
                guess = cachekey.components(stage, images[d.stage], code_digest, previous.get("inputs", {}))
                row["changed"] = cachekey.changed(previous, guess)
        rows.append(row)
    return rows
