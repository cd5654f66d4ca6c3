"""``tycho reproduce RUN``: run a recorded run again, cache ignored, and compare bits.

Works for runs made on this machine and on a cluster alike: the manifest comes from the
run summary, the exact code from the archive the run (or, on a cluster, each stage's
wrapper) stored, so the working tree or the image may have moved on. Every stage
re-executes (downstream stages read the *re-derived* upstream outputs, so the whole
chain is checked), and each output is compared with the digest recorded for the
original run. ``compare`` is shared with ``tycho reproduce --on-cluster``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pydantic

from tycho.api import validation
from tycho.executors import base
from tycho.provenance import code, documents, layout, record, runs, store as store_mod
from tycho.runners import local, progress
from tycho.stage import imports


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=pydantic.alias_generators.to_camel, populate_by_name=True)


class OutputComparison(_Model):
    stage: str
    output: str
    recorded: str
    reproduced: str | None
    identical: bool


class Report(_Model):
    run_id: str
    reproduction_run_id: str
    phase: str
    identical: bool
    outputs: list[OutputComparison]
    warnings: list[str] = []


def recorded_code(store: store_mod.Store, summary: documents.RunSummary) -> documents.CodeRef:
    """The code a run ran: its summary's archive, else the archive its records name."""
    if summary.code is not None and summary.code.archive:
        return summary.code
    for result in summary.stages.values():
        if result.record and store.exists(layout.rel(result.record)):
            ref = record.code_of(store.read_json(layout.rel(result.record)))
            if ref.archive:
                return ref
    raise LookupError(f"run {summary.run_id} recorded no code archive (its stages ran before records kept one); "
                      "re-run it with a changed spec.stages[].cache.version to re-derive its outputs")


def warnings_for(store: store_mod.Store, summary: documents.RunSummary, executor: base.Executor) -> list[str]:
    """What differs between the recorded environment and the one about to re-run it."""
    out: list[str] = []
    for name, result in summary.stages.items():
        if not result.record or not store.exists(layout.rel(result.record)):
            continue
        env = record.byproduct(store.read_json(layout.rel(result.record)), "environment")
        dists = (env or {}).get("content", {}).get("distributions")
        if dists and executor.kind == "subprocess" and (changed := imports.mismatch(dists)):
            out.append(f"stage {name} ran with other Python distributions than installed here: "
                       + ", ".join(changed))
    return out


def compare(original: documents.RunSummary, new: documents.RunSummary, warnings: list[str]) -> Report:
    outputs: list[OutputComparison] = []
    for stage, result in original.stages.items():
        got = new.stages.get(stage)
        for name, digest in sorted(result.outputs.items()):
            mine = got.outputs.get(name) if got else None
            outputs.append(OutputComparison(stage=stage, output=name, recorded=digest, reproduced=mine,
                                            identical=mine == digest))
    return Report(run_id=original.run_id, reproduction_run_id=new.run_id, phase=new.phase,
                  identical=new.phase == "Succeeded" and all(o.identical for o in outputs),
                  outputs=outputs, warnings=warnings)


def reproduce(run_id: str, store_url: str, reporter: progress.Reporter, executor: base.LocalExecutor,
              **kw: object) -> Report:
    """Re-run ``run_id`` on this machine; returns per-output comparisons."""
    store = store_mod.Store(store_url)
    original = runs.load(store, run_id)
    pipeline = validation.check(original.manifest)
    ref = recorded_code(store, original)
    warnings = warnings_for(store, original, executor)
    with tempfile.TemporaryDirectory(prefix="tycho-reproduce-") as tmp:
        code_dir = Path(tmp) / "code"
        code.extract(store.get_bytes(ref.digest), code_dir)
        opts = local.Options(store_url=store.url, manifest_dir=code_dir, code=ref, code_dir=code_dir, force=True,
                             reproduces=run_id, **kw)  # type: ignore[arg-type]
        outcome = local.run(pipeline, opts, reporter, executor)
    return compare(original, outcome.summary, warnings)
