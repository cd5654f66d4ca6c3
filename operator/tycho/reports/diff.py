"""``tycho diff A B`` and the board's compare page: what differs between runs, and why.

``compare`` lines up any number of runs (the compare page has no cap): spec and params,
code, data (external inputs, stage inputs and outputs), images, non-secret env, metrics
(with deltas from the first run) and what each stage did. ``diff`` is the two-run case
plus what only two runs can have: a file-level unified diff of the code from the stored
code archives, and for every stage of B whether it executed and why (the cache-key
components that changed since A, ``tycho.planning.cachekey.changed``).
"""

from __future__ import annotations

import difflib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic
from pydantic import alias_generators

from tycho.index import rows
from tycho.planning import cachekey
from tycho.provenance import documents, layout, store as store_mod

MAX_DIFF_LINES = 400
MAX_FILE_BYTES = 1_000_000


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class Row(Model):
    key: str
    values: list[Any]
    changed: bool
    deltas: list[float | None] = []
    """Metrics: each run's value minus the first run's."""


class Section(Model):
    name: str
    title: str
    rows: list[Row]

    @property
    def changed(self) -> list[Row]:
        return [r for r in self.rows if r.changed]


class Comparison(Model):
    runs: list[str]
    sections: list[Section]


class FileDiff(Model):
    path: str
    status: str
    """added, removed, modified, binary"""
    diff: str = ""
    truncated: bool = False


class StageWhy(Model):
    stage: str
    phase_a: str | None
    phase_b: str | None
    executed: bool
    """Whether B executed the stage (rather than reusing a result)."""
    reason: str
    changed: list[str] = []


class RunDiff(Model):
    a: str
    b: str
    comparison: Comparison
    code_files: list[FileDiff]
    stages: list[StageWhy]


# ---- N runs ---------------------------------------------------------------------------------

def _section(name: str, title: str, columns: Sequence[Mapping[str, Any]], numeric: bool = False) -> Section:
    keys = list(dict.fromkeys(k for col in columns for k in col))
    out: list[Row] = []
    for key in keys:
        values = [col.get(key) for col in columns]
        changed = len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1
        deltas: list[float | None] = []
        if numeric:
            base = values[0]
            deltas = [v - base if isinstance(v, (int, float)) and isinstance(base, (int, float)) else None
                      for v in values]
        out.append(Row(key=key, values=values, changed=changed, deltas=deltas))
    return Section(name=name, title=title, rows=out)


def _params(s: documents.RunSummary) -> dict[str, Any]:
    return {name: value for stage, params in rows.params_of(s).items()
            for name, value in rows.flatten(stage, params) if name != stage}


def _spec(s: documents.RunSummary) -> dict[str, Any]:
    """The spec apart from params (command, args, image, resources, inputs, run settings)."""
    spec = dict(s.manifest.get("spec", {})) if s.manifest else {}
    out: dict[str, Any] = {}
    for stage in spec.pop("stages", []):
        name = stage.get("name", "?")
        for field, value in stage.items():
            if field not in ("name", "params", "env"):
                out[f"stages.{name}.{field}"] = value
    for field, value in spec.items():
        out[field] = value
    return out


def _images(s: documents.RunSummary) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in rows.ordered(s):
        name = st.name
        if st.image is not None:
            out[name] = st.image.reference + (f"@sha256:{st.image.digest}" if st.image.digest else "")
        elif st.key_components:
            out[name] = st.key_components.get("image")
    return out


def _env(s: documents.RunSummary) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for st in rows.ordered(s):
        name = st.name
        for k, v in ((st.key_components or {}).get("env") or {}).items():
            out[f"{name}.{k}"] = v
    return out


def _data(s: documents.RunSummary) -> dict[str, Any]:
    out: dict[str, Any] = {f"external {url}": digest for url, digest in s.external.items()}
    for st in rows.ordered(s):
        name = st.name
        for inp, digest in ((st.key_components or {}).get("inputs") or {}).items():
            out[f"{name} in:{inp}"] = digest
        for output, digest in st.outputs.items():
            out[f"{name} out:{output}"] = digest
    return out


def _metrics(s: documents.RunSummary) -> dict[str, Any]:
    """The run's final metrics, and STAGE.METRIC for names more than one stage reports."""
    out: dict[str, Any] = dict(rows.final_metrics(s))
    reporters: dict[str, int] = {}
    for st in s.stages.values():
        for metric in st.metrics:
            reporters[metric] = reporters.get(metric, 0) + 1
    for st in rows.ordered(s):
        for metric, value in st.metrics.items():
            if reporters[metric] > 1:
                out[f"{st.name}.{metric}"] = value
    return out


def _stages(s: documents.RunSummary) -> dict[str, Any]:
    return {st.name: ("ran" if st.phase == "Succeeded" else "cache hit" if st.phase == "Cached" else st.phase)
            for st in rows.ordered(s)}


def _code(s: documents.RunSummary) -> dict[str, Any]:
    if s.code is None:
        return {}
    return {"digest": s.code.digest, "commit": s.code.commit, "dirty": s.code.dirty, "source": s.code.source}


def _run(s: documents.RunSummary) -> dict[str, Any]:
    return {"phase": s.phase, "owner": s.owner, "tags": s.tags, "executor": s.runner.executor,
            "created": s.created_at, "reproduces": s.reproduces}


def compare(summaries: Sequence[documents.RunSummary]) -> Comparison:
    return Comparison(runs=[s.run_id for s in summaries], sections=[
        _section("run", "Run", [_run(s) for s in summaries]),
        _section("params", "Params", [_params(s) for s in summaries]),
        _section("metrics", "Metrics", [_metrics(s) for s in summaries], numeric=True),
        _section("stages", "Stage results", [_stages(s) for s in summaries]),
        _section("code", "Code", [_code(s) for s in summaries]),
        _section("data", "Data (sha256)", [_data(s) for s in summaries]),
        _section("images", "Images", [_images(s) for s in summaries]),
        _section("env", "Environment (non-secret)", [_env(s) for s in summaries]),
        _section("spec", "Spec", [_spec(s) for s in summaries]),
    ])


# ---- two runs -------------------------------------------------------------------------------

def why(a: documents.RunSummary, b: documents.RunSummary) -> list[StageWhy]:
    """For each stage of B: did it execute, and what made its cache key differ from A's."""
    out: list[StageWhy] = []
    for name in list(dict.fromkeys([*rows.stage_order(b), *rows.stage_order(a)])):
        sa, sb = a.stages.get(name), b.stages.get(name)
        if sb is None:
            out.append(StageWhy(stage=name, phase_a=sa.phase if sa else None, phase_b=None, executed=False,
                                reason=f"not in {b.run_id}"))
            continue
        executed = sb.phase == "Succeeded"
        changed: list[str] = []
        if sb.phase == "Cached":
            origin = layout.run_of_record(sb.record) if sb.record else None
            reason = f"cache hit: reused the result of {origin}" if origin else "cache hit"
        elif sb.phase != "Succeeded":
            reason = sb.phase + (f": {sb.message.splitlines()[0]}" if sb.message else "")
        elif sa is None or not sa.key_components:
            reason = f"executed: {a.run_id} has no recorded key for this stage"
        elif sb.key_components and sa.cache_key != sb.cache_key:
            changed = cachekey.changed(sa.key_components, sb.key_components)
            reason = "executed: its cache key changed (" + "; ".join(changed) + ")"
        elif b.reproduces:
            reason = f"executed: same cache key, re-run on purpose to reproduce {b.reproduces}"
        else:
            reason = "executed: same cache key as in A, but A's outputs were missing or refused"
        out.append(StageWhy(stage=name, phase_a=sa.phase if sa else None, phase_b=sb.phase, executed=executed,
                            reason=reason, changed=changed))
    return out


def _archive(store: store_mod.Store, code: documents.CodeRef | None) -> dict[str, bytes] | None:
    if code is None or not code.archive:
        return None
    digest = layout.digest_of(code.archive)
    if digest is None:
        return None
    try:
        data = store.get_bytes(digest)
    except (OSError, FileNotFoundError, store_mod.IntegrityError):
        return None
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.size <= MAX_FILE_BYTES:
                f = tar.extractfile(member)
                if f is not None:
                    files[member.name] = f.read()
    return files


def _text(data: bytes) -> list[str] | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def code_diff(store: store_mod.Store, a: documents.RunSummary, b: documents.RunSummary) -> list[FileDiff]:
    """File-level unified diff of the two runs' stored code archives (empty when the same)."""
    if a.code is not None and b.code is not None and a.code.digest == b.code.digest:
        return []
    old, new = _archive(store, a.code), _archive(store, b.code)
    if old is None or new is None:
        missing = a.run_id if old is None else b.run_id
        return [FileDiff(path="(code archive)", status="unavailable",
                         diff=f"the code archive of {missing} is not in the store (code from an image reference)")]
    return list(_file_diffs(old, new, a.run_id, b.run_id))


def _file_diffs(old: Mapping[str, bytes], new: Mapping[str, bytes], la: str, lb: str) -> Iterator[FileDiff]:
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        status = "added" if a is None else "removed" if b is None else "modified"
        ta, tb = _text(a or b""), _text(b or b"")
        if ta is None or tb is None:
            yield FileDiff(path=path, status="binary" if status == "modified" else status)
            continue
        lines = list(difflib.unified_diff(ta, tb, f"{la}/{path}", f"{lb}/{path}", n=3))
        truncated = len(lines) > MAX_DIFF_LINES
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines[:MAX_DIFF_LINES])
        yield FileDiff(path=path, status=status, diff=text, truncated=truncated)


def diff(store: store_mod.Store, a: documents.RunSummary, b: documents.RunSummary) -> RunDiff:
    return RunDiff(a=a.run_id, b=b.run_id, comparison=compare([a, b]), code_files=code_diff(store, a, b),
                   stages=why(a, b))
