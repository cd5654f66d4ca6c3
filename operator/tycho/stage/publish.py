"""The publish phase: hash and store the outputs, then the record (write-once, signed),
then the indexes that point at it (the cache entry, each output's producer).

It runs with the store credentials and the signing key, after the run phase, and reads
what the stage left only after ``work.check_out``. On failure nothing is visible: outputs
are content-addressed (invisible until a record names them) and the record comes last.
An execution retried after its record was written adopts that record (``_adopt``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tycho.provenance import (
    cache,
    documents,
    jsondoc,
    layout,
    metrics as metrics_mod,
    record,
    signing,
    store as store_mod,
    tree,
)
from tycho.stage import checks as checks_mod, imports
from tycho.stage.invocation import Invocation, Result
from tycho.stage.work import Log, StageFailed, Work, check_out, missing

METRICS_LOG = "metrics.jsonl"
"""The only output a sweep trial stopped early keeps (its record's subject)."""


def _code(inv: Invocation, store: store_mod.Store, work: Work, log: Log) -> documents.CodeRef:
    """The code as run. Local runs stored its archive already; in an image, the run phase
    archived it, so ``tycho reproduce`` can run exactly this code anywhere."""
    if inv.code.archive:
        return inv.code
    if not work.code.is_file():
        raise StageFailed(f"stage {inv.stage!r}: the run phase left no code archive ({work.code.name})")
    digest = store.put_file(work.code)
    if inv.code.source == "spec.code.digest" and digest != inv.code.digest:
        log(f"[tycho] warning: the code in {inv.workdir} has digest {digest}, but spec.code.digest says "
            f"{inv.code.digest}: the image was built from other code than the manifest names")
    return inv.code.model_copy(update={"digest": digest, "archive": layout.object_rel(digest)})


def publish(inv: Invocation, store: store_mod.Store, work: Work, log: Log = print) -> Result:
    """Hash and store the outputs, then the record (write-once, signed), then the indexes."""
    check_out(inv, work)
    fetched = json.loads(work.fetched.read_text())
    ran: dict[str, Any] = (json.loads(work.ran.read_text()) if work.ran.is_file()
                           else {"ok": False, "reason": "the stage did not run"})
    if not ran.get("ok"):
        raise StageFailed(f"stage {inv.stage!r} failed after {ran.get('attempts', 0)} attempt(s): {ran.get('reason')}")
    stopped: int | None = ran.get("stopped")
    if stopped is None and (absent := missing(inv, work.outputs)):
        raise StageFailed(f"stage {inv.stage!r}: missing outputs: {', '.join(absent)}")
    if (adopted := _adopt(store, inv)) is not None:
        log(f"[tycho] {adopted.record} was published by an earlier attempt of this execution: kept")
        return adopted
    kept = [] if stopped is not None else inv.outputs  # a trial stopped early keeps only its metrics log
    directories = [o.name for o in kept if o.type == "directory"]
    try:
        digests = {o.name: tree.put(store, work.outputs / o.name) if o.type == "directory"
                   else store.put_file(work.outputs / o.name) for o in kept}
    except ValueError as bad:
        raise StageFailed(f"stage {inv.stage!r}: {bad}") from None
    lines = work.metrics.read_text(errors="replace").splitlines() if work.metrics.is_file() else []
    metrics = metrics_mod.last_values(lines)
    curve = dict(metrics_mod.series(lines).get(inv.objective, [])) if inv.objective else None
    metrics_log = store.put_bytes("\n".join(lines).encode() + (b"\n" if lines else b""))
    if stopped is not None:
        digests = {METRICS_LOG: metrics_log}
    metrics_blob = store.put_bytes(jsondoc.encode(metrics))
    checks = checks_mod.read(work.checks)
    checks_blob = store.put_bytes(jsondoc.encode([c.model_dump(mode="json") for c in checks])) if checks else None
    distributions = imports.read(work.imports) or None
    environment = {"distributions": distributions or {}, "execution": ran["facts"]}
    environment_blob = store.put_bytes(jsondoc.encode(environment))
    code_ref = _code(inv, store, work, log)
    sbom = store.put_file(work.sbom) if work.sbom.is_file() else None
    doc = record.build(
        stage=inv.stage, pipeline=inv.pipeline, run_id=inv.run_id,
        invocation_id=os.environ.get("TYCHO_INVOCATION_ID") or inv.invocation_id, executor=inv.executor,
        outputs=digests, directories=directories, params=inv.params, command=inv.command, args=inv.args,
        env=inv.env, cache_key=inv.cache_key, key_components=inv.key_components, inputs=fetched["inputs"],
        code=code_ref, image=inv.image, started=fetched["started"], finished=documents.now(),
        metrics_blob=metrics_blob, metrics_log=metrics_log, environment_blob=environment_blob,
        attempts=int(ran["attempts"]), trial=inv.trial, stopped=stopped, checks_blob=checks_blob, image_sbom=sbom)
    entry = documents.CacheEntry(key=inv.cache_key, record=layout.record_rel(inv.run_id, inv.stage, inv.trial),
                                 outputs=digests, directories=directories, metrics=metrics, environment=distributions,
                                 curve=curve, stopped=stopped, checks=checks)
    try:
        record_rel = write_record(store, inv, doc, entry)
    except store_mod.WriteOnceViolation:  # another attempt of this execution published first
        adopted = _adopt(store, inv)
        if adopted is None:
            raise
        log(f"[tycho] {adopted.record} was published by another attempt of this execution at the same time: kept")
        return adopted
    store.delete(layout.live_metrics_rel(inv.run_id, inv.stage, inv.trial))  # the record holds the series now
    meta = doc["predicate"]["runDetails"]["metadata"]
    return Result(stage=inv.stage, trial=inv.trial, outputs=digests, directories=directories, record=record_rel,
                  metrics=metrics, attempts=int(ran["attempts"]), started=meta["startedOn"],
                  finished=meta["finishedOn"], environment=distributions, curve=curve, stopped=stopped, checks=checks)


def _adopt(store: store_mod.Store, inv: Invocation) -> Result | None:
    """An earlier attempt of this execution that died after writing its record (a publish
    interrupted by a store outage or a killed pod): the record stands, the signature and
    indexes it may lack are completed, so a retried Job converges instead of failing on
    the write-once record."""
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    if not store.exists(rel):
        return None
    data = store.read_bytes(rel)
    doc = json.loads(data)
    if doc["predicate"]["buildDefinition"]["internalParameters"]["cacheKey"] != inv.cache_key:
        raise StageFailed(f"{rel} already exists for another cache key; records are write-once")
    metrics = json.loads(store.get_bytes(record.byproduct_digest(doc, "metrics") or ""))
    env_digest = record.byproduct_digest(doc, "environment")
    distributions = (json.loads(store.get_bytes(env_digest)).get("distributions") or None) if env_digest else None
    outputs, directories = record.outputs_of(doc), record.directories_of(doc)
    internal = doc["predicate"]["buildDefinition"]["internalParameters"]
    checks_digest = record.byproduct_digest(doc, "checks")
    checks = [documents.Check.model_validate(c) for c in json.loads(store.get_bytes(checks_digest))] \
        if checks_digest else []
    metrics_log = record.byproduct_digest(doc, "metrics.jsonl")
    lines = store.get_bytes(metrics_log).decode(errors="replace").splitlines() if metrics_log else []
    curve = dict(metrics_mod.series(lines).get(inv.objective, [])) if inv.objective else None
    _sign_and_index(store, inv, data, documents.CacheEntry(
        key=inv.cache_key, record=rel, outputs=outputs, directories=directories, metrics=metrics,
        environment=distributions, curve=curve, stopped=internal.get("stoppedAt"), checks=checks))
    meta = doc["predicate"]["runDetails"]["metadata"]
    return Result(stage=inv.stage, trial=inv.trial, outputs=outputs, directories=directories, record=rel,
                  metrics=metrics, attempts=int(internal["attempts"]), started=meta["startedOn"],
                  finished=meta["finishedOn"], environment=distributions, curve=curve,
                  stopped=internal.get("stoppedAt"), checks=checks)


def write_record(store: store_mod.Store, inv: Invocation, doc: dict[str, object], entry: documents.CacheEntry) -> str:
    """Write the record (write-once) and its signature, then the indexes that point at it."""
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    data = record.encode(doc)
    store.write_bytes_once(rel, data)
    _sign_and_index(store, inv, data, entry)
    return rel


def _sign_and_index(store: store_mod.Store, inv: Invocation, data: bytes, entry: documents.CacheEntry) -> None:
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    key = signing.configured_key()
    att = layout.attestation_rel(inv.run_id, inv.stage, inv.trial)
    if key is not None and not store.exists(att):
        kid = signing.keyid(key.public_key())
        if not store.exists(layout.key_rel(kid)):
            store.write_bytes(layout.key_rel(kid), signing.public_pem(key.public_key()))
        try:
            store.write_bytes_once(att, signing.sign(data, key).encode())
        except store_mod.WriteOnceViolation:
            pass  # another attempt signed the same record meanwhile
    cache.write(store, entry)
    for digest in entry.outputs.values():
        if not store.exists(layout.producer_rel(digest)):
            cache.write_producer(store, digest, rel)
