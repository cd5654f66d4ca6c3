"""``tycho explain``: per stage, hit or miss, and for a miss what changed since the last run.

Runs one step of the scheduler as if the pipeline started now (no execution is started)
and compares the cache-key components of each miss with those recorded in the
pipeline's latest run summary, so the answer is "params.epochs: 30 -> 2", not just "miss".
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import pydantic

from tycho.api import models
from tycho.engine import lookup as lookup_mod, model, prepare, scheduler
from tycho.executors import base, process
from tycho.planning import cachekey
from tycho.provenance import code as code_mod, documents, runs, store as store_mod


class Row(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=pydantic.alias_generators.to_camel, populate_by_name=True)

    stage: str
    action: Literal["hit", "run", "wait"]
    reason: str
    cache_key: str | None = None
    changed: list[str] = []
    last_run: str | None = None


class _Silent:
    def line(self, stage: str, text: str) -> None: ...
    def metrics(self, stage: str, values: dict[str, float]) -> None: ...


def explain(pipeline: models.ExperimentPipeline, store_url: str, manifest_dir: Path,
            executor: base.Executor | None = None) -> list[Row]:
    store = store_mod.Store(store_url)
    if executor is None:
        scratch = Path(tempfile.gettempdir())
        executor = process.ProcessExecutor(scratch, scratch, _Silent())
    if isinstance(executor, base.LocalExecutor) and executor.kind == "container":
        code, workdir = executor.code(pipeline, store, manifest_dir)  # the code in the images: nothing stored
    else:
        root = prepare.code_root(pipeline, manifest_dir)
        code, workdir = documents.CodeRef(digest=code_mod.digest(root)), str(root)
    images = {s.name: executor.image(s) for s in pipeline.spec.stages}
    unbounded = pipeline.model_copy(update={"spec": pipeline.spec.model_copy(update={"max_parallel": 10**9,
                                                                                     "suspend": False})})
    ctx = model.Context(pipeline=unbounded, run_id="explain", store=store.url, code=code, workdir=workdir,
                        images={n: i[0] for n, i in images.items()}, image_parts={n: i[1] for n, i in images.items()},
                        external=prepare.external_digests(pipeline), executor=executor.kind)
    lookup = lookup_mod.StoreLookup(store, executor.admit)
    plan = scheduler.step(ctx, model.Observed(stages={}, executions={}, lookup=lookup, now=documents.now(),
                                              suggest=lookup_mod.StoreSuggestions(store)))
    last = runs.latest(store, pipeline.metadata.name)
    by_name = {s.name: s for s in pipeline.spec.stages}
    rows: list[Row] = []
    for name, result in plan.stages.items():
        previous = last.stages[name].key_components if last and name in last.stages else None
        row = Row(stage=name, action="hit" if result.phase == "Cached" else "run" if result.phase == "Running"
                  else "wait", reason=result.message, cache_key=result.cache_key,
                  last_run=last.run_id if last else None)
        if row.action == "run" and result.key_components is not None:
            refused = lookup.refused.get(result.cache_key or "")
            if previous:
                row.changed = cachekey.changed(previous, result.key_components)
            if refused:
                row.reason = f"an entry for this key exists, but {refused}"
            elif previous and not row.changed:
                row.reason = "same key as the last run, but its outputs are missing from the store"
            elif not previous:
                row.reason = "no earlier run of this pipeline recorded this stage"
        elif row.action == "wait":
            row.reason += " (its key depends on outputs not produced yet)"
            if previous:
                guess = cachekey.components(by_name[name], ctx.image_parts[name], code.digest,
                                            previous.get("inputs", {}))
                row.changed = cachekey.changed(previous, guess)
        rows.append(row)
    return rows
