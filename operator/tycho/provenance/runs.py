"""Run summaries in the store: save, load, list, and whether a run is still alive.

The summary itself is ``tycho.provenance.documents.RunSummary``; paths come from
``tycho.provenance.layout``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import socket

import pydantic
import pydantic_core
from cryptography.hazmat.primitives.asymmetric import ed25519

from tycho.provenance import documents, jsondoc, layout, signing, store as store_mod

HEARTBEAT_SECONDS = 30.0
"""How often a local run refreshes ``heartbeatAt``; a run silent for 4x this is Lost."""


def new_run_id(pipeline: str, when: dt.datetime | None = None) -> str:
    """Local runs: sortable and unique, ``<pipeline>-<UTC yyyymmdd-hhmmss>-<4 hex>``."""
    when = when or dt.datetime.now(dt.UTC)
    return f"{pipeline}-{when.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def this_process() -> documents.Runner:
    return documents.Runner(executor="subprocess", host=socket.gethostname(), pid=os.getpid())


RUN_PREDICATE = "https://tycho.dev/run/v1"


def encode(summary: documents.RunSummary) -> bytes:
    """The bytes a summary is stored as (what its seal names by digest): fields in the
    model's order, encoded by pydantic's serializer (a tenth of the time ``json.dumps`` with
    an indent takes, and no garbage of small strings: the operator writes one per pass)."""
    try:
        return summary.model_dump_json(by_alias=True, indent=2).encode() + b"\n"
    except pydantic_core.PydanticSerializationError:  # e.g. a lone surrogate from a stage's own JSON: escaped
        return (json.dumps(summary.dump(), indent=2) + "\n").encode()


def marker_bytes(run_id: str) -> bytes:
    return jsondoc.encode({"runId": run_id})


def save(store: store_mod.Store, summary: documents.RunSummary, *, indexed: bool = False) -> str:
    """Write (or replace) a summary; unless ``indexed``, make sure the pipeline's index lists it.
    Returns the stored bytes' sha256 (what a seal of this summary names)."""
    data = encode(summary)
    store.write_bytes(layout.summary_rel(summary.run_id), data)
    if not indexed:
        ensure_indexed(store, summary)
    return hashlib.sha256(data).hexdigest()


def ensure_indexed(store: store_mod.Store, summary: documents.RunSummary) -> None:
    """The pipeline's index lists the run (a writer killed between the summary and its
    marker left it out: whoever loads the summary next puts it back)."""
    marker = layout.pipeline_run_marker(summary.pipeline, summary.created_at, summary.run_id)
    if not store.exists(marker):
        store.write_bytes(marker, marker_bytes(summary.run_id))


def seal_statement(summary: documents.RunSummary, digest: str | None = None) -> dict[str, object]:
    """An in-toto Statement naming the summary's stored bytes: signed once the run is over.
    ``digest``: those bytes' sha256 when the caller has it (``save`` returns it)."""
    rel = layout.summary_rel(summary.run_id)
    return {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": rel, "uri": layout.store_uri(rel),
                         "digest": {"sha256": digest or hashlib.sha256(encode(summary)).hexdigest()}}],
            "predicateType": RUN_PREDICATE, "predicate": {"runId": summary.run_id, "phase": summary.phase}}


def seal(store: store_mod.Store, summary: documents.RunSummary, key: ed25519.Ed25519PrivateKey | None,
         digest: str | None = None) -> None:
    """Sign a finished run's summary (no key: nothing to sign with). ``digest``: the sha256
    of its stored bytes; read from the store when not given (bytes an older version wrote
    need not be what ``encode`` writes today)."""
    if key is None:
        return
    digest = digest or hashlib.sha256(store.read_bytes(layout.summary_rel(summary.run_id))).hexdigest()
    kid = signing.keyid(key.public_key())
    if not store.exists(layout.key_rel(kid)):
        store.write_bytes(layout.key_rel(kid), signing.public_pem(key.public_key()))
    payload = json.dumps(seal_statement(summary, digest), sort_keys=True).encode()
    store.write_bytes(layout.run_attestation_rel(summary.run_id), signing.sign(payload, key).encode())


def load(store: store_mod.Store, run_id: str) -> documents.RunSummary:
    """A summary by run id; a run whose process died shows as ``Lost``."""
    summary = load_if_exists(store, run_id)
    if summary is None:
        raise LookupError(f"no run {run_id!r} in {store.url} (list runs with `tycho runs`)")
    return summary


def load_if_exists(store: store_mod.Store, run_id: str) -> documents.RunSummary | None:
    rel = layout.summary_rel(run_id)
    try:
        doc = store.read_json_if_exists(rel)
        if doc is None:
            return None
        summary = documents.RunSummary.model_validate(doc)
    except (ValueError, pydantic.ValidationError) as err:
        raise LookupError(f"run summary {store.uri(rel)} is unreadable: {str(err).splitlines()[0]}") from None
    return liveness(summary)


def liveness(summary: documents.RunSummary, at: dt.datetime | None = None) -> documents.RunSummary:
    """A local run still marked Running whose process is gone (same host) or whose heartbeat
    stopped (any host) is shown as Lost: killed with SIGKILL, or its machine went away."""
    if summary.phase != "Running" or summary.runner.executor == "kubernetes":
        return summary
    runner = summary.runner
    if runner.host == socket.gethostname() and runner.pid is not None and not _alive(runner.pid):
        return _lost(summary, f"its process {runner.pid} on {runner.host} is gone")
    beat = summary.heartbeat_at or summary.created_at
    silent = ((at or dt.datetime.now(dt.UTC)) - documents.parse_time(beat)).total_seconds()
    if silent > 4 * HEARTBEAT_SECONDS:
        return _lost(summary, f"no heartbeat from {runner.host or 'its host'} for {silent:.0f}s")
    return summary


def _lost(summary: documents.RunSummary, why: str) -> documents.RunSummary:
    stages = {n: s.model_copy(update={"phase": "Cancelled", "message": "lost with its run"})
              if s.phase in ("Running", "Pending") else s for n, s in summary.stages.items()}
    return summary.model_copy(update={"phase": "Lost", "message": f"the run stopped without finishing: {why}",
                                      "stages": stages})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def run_ids(store: store_mod.Store, pipeline: str | None = None) -> list[str]:
    """Run ids, oldest first, of one pipeline or of all."""
    pipelines = [pipeline] if pipeline else store.list(layout.PIPELINES)
    entries: list[str] = []
    for name in pipelines:
        entries += store.list(layout.pipeline_runs_dir(name))
    entries.sort()
    return [layout.run_id_of_marker(e) for e in entries]


def latest(store: store_mod.Store, pipeline: str, exclude: str | None = None) -> documents.RunSummary | None:
    """The newest run summary of a pipeline, if any."""
    for run_id in reversed(run_ids(store, pipeline)):
        if run_id != exclude:
            return load(store, run_id)
    return None
