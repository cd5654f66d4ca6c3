"""``tycho reproduce RUN``: run a recorded run again, cache ignored, and compare bits.

Works for runs made on this machine and on a cluster alike: the manifest comes from the
run summary, the exact code from the archive the run (or, on a cluster, each stage's
wrapper) stored, so the working tree or the image may have moved on. Every stage
re-executes (downstream stages read the *re-derived* upstream outputs, so the whole
chain is checked), and each output is compared with the digest recorded for the
original run. ``compare`` is shared with ``tycho reproduce --on-cluster``.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pydantic

from tycho.api import validation
from tycho.executors import base
from tycho.provenance import (
    audit,
    code,
    compare as compare_mod,
    documents,
    layout,
    record,
    runs,
    slsa,
    store as store_mod,
)
from tycho.runners import local, progress
from tycho.stage import facts, imports


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=pydantic.alias_generators.to_camel, populate_by_name=True)


class OutputComparison(_Model):
    stage: str
    output: str
    recorded: str
    reproduced: str | None
    identical: bool
    bytes_differing: int | None = None
    """When they differ: how many bytes (positions that differ plus the difference in length)."""
    size_recorded: int | None = None
    size_reproduced: int | None = None


class Report(_Model):
    run_id: str
    reproduction_run_id: str
    phase: str
    identical: bool
    outputs: list[OutputComparison]
    warnings: list[str] = []
    environment: dict[str, list[str]] = {}
    """Per stage whose outputs differ: the execution-environment facts that differ
    between the recorded execution and the reproduction (``accelerators[0].name: A -> B``)."""
    problems: list[str] = []
    """What did not verify in the original run's records and objects before re-deriving."""


def _record(store: store_mod.Store, rel: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(store.read_bytes(rel))
        slsa.parse(doc)
    except FileNotFoundError:
        raise LookupError(f"{rel}: record is missing") from None
    except ValueError as err:
        raise LookupError(f"{rel}: record is unreadable ({str(err).splitlines()[0]})") from None
    return doc


def _environment(store: store_mod.Store, doc: dict[str, Any]) -> dict[str, Any]:
    digest = record.byproduct_digest(doc, "environment")
    try:
        found: dict[str, Any] = json.loads(store.get_bytes(digest)) if digest else {}
    except (FileNotFoundError, ValueError, store_mod.IntegrityError):
        return {}
    return found


def recorded_code(store: store_mod.Store, summary: documents.RunSummary) -> documents.CodeRef:
    """The code a run ran: its summary's archive, else the archive its records name."""
    if summary.code is not None and summary.code.archive:
        return summary.code
    for result in summary.stages.values():
        if result.record and store.exists(layout.rel(result.record)):
            ref = record.code_of(_record(store, layout.rel(result.record)))
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
        dists = _environment(store, _record(store, layout.rel(result.record))).get("distributions")
        if dists and executor.kind == "subprocess" and (changed := imports.mismatch(dists)):
            out.append(f"stage {name} ran with other Python distributions than installed here: "
                       + ", ".join(changed))
    return out


def compare(original: documents.RunSummary, new: documents.RunSummary, warnings: list[str],
            store: store_mod.Store | None = None, problems: list[str] | None = None) -> Report:
    """Output by output; with ``store``, how far apart differing outputs are and which
    execution-environment facts differ between the two executions of such a stage."""
    outputs: list[OutputComparison] = []
    environment: dict[str, list[str]] = {}
    for stage, result in original.stages.items():
        got = new.stages.get(stage)
        dirs = set(_directories(original, stage))
        for name, digest in sorted(result.outputs.items()):
            mine = got.outputs.get(name) if got else None
            item = OutputComparison(stage=stage, output=name, recorded=digest, reproduced=mine,
                                    identical=mine == digest)
            if store is not None and mine is not None and mine != digest:
                try:
                    far = compare_mod.distance(store, digest, mine, name in dirs)
                    item = item.model_copy(update={"bytes_differing": far.differing, "size_recorded": far.size_a,
                                                   "size_reproduced": far.size_b})
                except (OSError, ValueError, store_mod.IntegrityError):
                    pass
                if got is not None and got.record and result.record and stage not in environment:
                    environment[stage] = facts.differences(
                        _environment(store, _record(store, layout.rel(result.record))).get("execution") or {},
                        _environment(store, _record(store, layout.rel(got.record))).get("execution") or {})
            outputs.append(item)
    return Report(run_id=original.run_id, reproduction_run_id=new.run_id, phase=new.phase,
                  identical=new.phase == "Succeeded" and all(o.identical for o in outputs) and not problems,
                  outputs=outputs, warnings=warnings, environment=environment, problems=list(problems or []))


def _directories(summary: documents.RunSummary, stage: str) -> list[str]:
    spec = summary.manifest.get("spec", {})
    found: dict[str, Any] = next((s for s in spec.get("stages", []) if s.get("name") == stage), {})
    return [o["name"] for o in found.get("outputs", []) if isinstance(o, dict) and o.get("type") == "directory"]


def check_original(store: store_mod.Store, summary: documents.RunSummary) -> list[str]:
    """Problems with the original run's records and the objects they name (not fatal:
    re-deriving also heals a corrupt object, but the user must hear of it)."""
    keys = audit.trusted_keys(store)
    seen: set[str] = set()
    found: list[str] = []
    for rel in audit.record_paths(store, [summary.run_id]):
        parsed, problems = audit.check_record(store, rel, keys)
        found += [str(p) for p in problems]
        if parsed is not None:
            doc = parsed.statement.model_dump(by_alias=True, exclude_none=True)
            found += [str(p) for p in audit.check_objects(store, doc, rel, seen)]
    return found


def reproduce(run_id: str, store_url: str, reporter: progress.Reporter, executor: base.LocalExecutor,
              **kw: object) -> Report:
    """Re-run ``run_id`` on this machine; returns per-output comparisons."""
    store = store_mod.Store(store_url)
    original = runs.load(store, run_id)
    pipeline = validation.check(original.manifest)
    ref = recorded_code(store, original)
    warnings = warnings_for(store, original, executor)
    problems = check_original(store, original)
    try:
        archive = store.get_bytes(ref.digest)
    except (FileNotFoundError, store_mod.IntegrityError):
        raise LookupError(f"{layout.object_rel(ref.digest)}: the recorded code archive is missing or does not hash "
                          "to its name, so the recorded code cannot run again") from None
    with tempfile.TemporaryDirectory(prefix="tycho-reproduce-") as tmp:
        code_dir = Path(tmp) / "code"
        try:
            code.extract(archive, code_dir)
        except (tarfile.TarError, OSError) as bad:
            raise LookupError(f"{layout.object_rel(ref.digest)}: the code archive does not extract ({bad})") from None
        opts = local.Options(store_url=store.url, manifest_dir=code_dir, code=ref, code_dir=code_dir, force=True,
                             reproduces=run_id, **kw)  # type: ignore[arg-type]
        outcome = local.run(pipeline, opts, reporter, executor)
    return compare(original, outcome.summary, warnings, store, problems)
