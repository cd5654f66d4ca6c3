"""Checks that what a store says is true: records parse strictly, are signed, agree with
themselves and with where they are stored; every object they name hashes to its name;
every cache entry agrees with its record.

Each problem is a one-line ``Finding`` naming the store path at fault. ``tycho verify``
reports them all; the engine's cache lookup (``tycho.engine.lookup``) refuses an entry
with any (a poisoned entry is never served: the stage executes instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pydantic
from cryptography.hazmat.primitives.asymmetric import ed25519

from tycho import settings
from tycho.api import phases, problems
from tycho.planning import cachekey
from tycho.provenance import cache as cache_mod, documents, layout, record, signing, slsa, store as store_mod, tree

Keys = dict[str, ed25519.Ed25519PublicKey]


@dataclasses.dataclass(frozen=True)
class Finding:
    path: str
    """The store path at fault."""
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def store_keys(store: store_mod.Store) -> Keys:
    """The public keys the store holds (``keys/*.pub``), by keyid."""
    found: Keys = {}
    for name in store.list(layout.KEYS):
        try:
            public = signing.load_public(store.read_bytes(f"{layout.KEYS}/{name}"))
        except (ValueError, OSError):
            continue
        found[signing.keyid(public)] = public
    return found


def local_keys() -> Keys:
    """The public half of the signing key this process is configured with, if any (a key
    file named but not made yet is none; one that is no key is refused, naming it)."""
    path = os.environ.get(signing.KEY_ENV)
    if not path or not os.path.isfile(path):
        return {}
    return file_keys([path], signing.KEY_ENV)


def file_keys(paths: Iterable[str | Path], where: str = "--key") -> Keys:
    """Public keys from PEM files (a private key file gives its public half); a file that
    cannot be read as one is refused naming ``where`` it was given (a flag, a variable)."""
    found: Keys = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
            public = (signing.load_private(path).public_key() if b"PRIVATE KEY" in data
                      else signing.load_public(data))
        except (OSError, ValueError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
            raise problems.InvalidInput([problems.Problem(where, f"{path}: {why}", "give a PEM file of an Ed25519 "
                                                          "public key (or of the private key that signs)")]) from None
        found[signing.keyid(public)] = public
    return found


def trusted_keys(store: store_mod.Store, extra: Iterable[str | Path] = ()) -> Keys:
    """Whose signatures count: the configured signing key, ``TYCHO_TRUSTED_KEYS``
    (comma-separated PEM files) and ``extra`` (the local signing key); when none is
    configured, the keys the store holds (that catches edits, not an attacker who can
    also write ``keys/``)."""
    configured = local_keys()
    configured.update(file_keys(extra, "the local signing key"))
    configured.update(file_keys(settings.trusted_key_files(), settings.TRUSTED_KEYS))
    return configured or store_keys(store)


def _read(store: store_mod.Store, rel: str) -> bytes | None:
    try:
        return store.read_bytes(rel)
    except FileNotFoundError:
        return None


def check_record(store: store_mod.Store, rel: str, keys: Keys) -> tuple[slsa.Tycho | None, list[Finding]]:
    """A record parsed strictly and its problems: JSON, schema, placement, the cache key
    recomputed from its build definition, its signature."""
    data = _read(store, rel)
    if data is None:
        return None, [Finding(rel, "record is missing")]
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        return None, [Finding(rel, f"record is not JSON ({str(err).splitlines()[0]})")]
    try:
        parsed = slsa.parse(doc)
    except ValueError as err:
        return None, [Finding(rel, f"record does not parse as in-toto Statement v1 + SLSA Provenance v1: {err}")]
    findings = [Finding(rel, p) for p in consistency(doc, parsed, rel)]
    findings += check_signature(store, rel, data, parsed, keys)
    return parsed, findings


def consistency(doc: Mapping[str, Any], parsed: slsa.Tycho, rel: str) -> list[str]:
    """Where a record contradicts itself or its place in the store."""
    problems: list[str] = []
    ext, internal = parsed.external, parsed.internal
    parts = rel.removeprefix(layout.RECORDS + "/").removesuffix(".json").split("/")
    if rel != layout.record_rel(internal.runId, ext.stage, internal.trial) and len(parts) in (2, 3):
        problems.append(f"record claims run {internal.runId} stage {ext.stage}"
                        + (f" trial {internal.trial}" if internal.trial is not None else "")
                        + f" but is stored as {rel}")
    comps = internal.keyComponents
    if cachekey.key(comps) != internal.cacheKey:
        problems.append("cacheKey is not the key of the record's keyComponents")
    for name, value in (("params", ext.params), ("command", ext.command), ("args", ext.args), ("env", ext.env)):
        if comps.get(name) != value:
            problems.append(f"keyComponents.{name} differs from externalParameters.{name}")
    deps = record.dependencies(doc)
    inputs = {d["name"].removeprefix("input:"): d["digest"]["sha256"] for d in deps if d["name"].startswith("input:")}
    if comps.get("inputs") != inputs:
        problems.append("keyComponents.inputs differ from the recorded input digests")
    dirs = set(record.directories_of(doc))
    outputs = sorted(n + "/" if n in dirs else n for n in record.outputs_of(doc))
    if internal.stoppedAt is not None:
        if list(record.outputs_of(doc)) != ["metrics.jsonl"]:
            problems.append("a trial stopped early must have its metrics log as its only subject")
    elif comps.get("outputs") != outputs:
        problems.append("keyComponents.outputs differ from the record's subjects")
    by_name = {d["name"]: d for d in deps}
    image_digest = ((by_name.get("image") or {}).get("digest") or {}).get("sha256")
    keyed_digest = (comps.get("image") or {}).get("digest")
    if keyed_digest and image_digest and keyed_digest != image_digest:
        problems.append("the image digest differs from the one in keyComponents.image")
    code = by_name.get("code") or {}
    if (code.get("annotations") or {}).get("source") == "archive" and comps.get("code") != code["digest"]["sha256"]:
        problems.append("the code digest differs from keyComponents.code")
    return problems


def check_signature(store: store_mod.Store, rel: str, data: bytes, parsed: slsa.Tycho, keys: Keys) -> list[Finding]:
    att = layout.attestation_rel(parsed.internal.runId, parsed.external.stage, parsed.internal.trial)
    bundle = _read(store, att)
    if bundle is None:
        return [Finding(rel, f"record is not signed ({att} is missing)")]
    try:
        envelopes = signing.parse_bundle(bundle)
        if not envelopes:
            raise signing.BadSignature("the bundle holds no envelope")
        if b"".join(e.encode() for e in envelopes) != bundle:
            raise signing.BadSignature("the bundle is not as written (edited or corrupt)")
        errors: list[str] = []
        for envelope in envelopes:
            try:
                signing.verify(envelope, data, keys)
                return []
            except signing.BadSignature as bad:
                errors.append(str(bad))
        raise signing.BadSignature(errors[0])
    except signing.BadSignature as bad:
        return [Finding(att, f"signature of {rel} does not verify: {bad}")]


def check_objects(store: store_mod.Store, doc: Mapping[str, Any], rel: str, seen: set[str]) -> list[Finding]:
    """Re-hash every object the record names (tree outputs: every file too); each once per ``seen``."""
    findings: list[Finding] = []
    for role, path, digest in record.store_paths(doc):
        if path in seen:
            continue
        seen.add(path)
        expected = layout.object_rel(digest)
        if path != expected:
            findings.append(Finding(rel, f"{role} names {path} for sha256 {digest}"))
            continue
        findings += _check_object(store, path, digest, f"{role} of {rel}")
        if digest and path.startswith(layout.OBJECTS) and _is_tree(doc, role):
            findings += _check_tree(store, digest, rel, seen)
    return findings


def _is_tree(doc: Mapping[str, Any], role: str) -> bool:
    name = role.removeprefix("output ").removeprefix("input:")
    return name in record.directories_of(doc) or any(
        d["name"] == role and d.get("mediaType") == tree.MEDIA_TYPE for d in record.dependencies(doc))


def _check_object(store: store_mod.Store, path: str, digest: str, what: str) -> list[Finding]:
    if not store.exists(path):
        return [Finding(path, f"missing ({what})")]
    if not store.verify(digest):
        return [Finding(path, f"does not hash to its name ({what})")]
    return []


def _check_tree(store: store_mod.Store, digest: str, rel: str, seen: set[str]) -> list[Finding]:
    try:
        listing = tree.load(store, digest)
    except (pydantic.ValidationError, ValueError, store_mod.IntegrityError):
        return [Finding(layout.object_rel(digest), f"is not a readable tree (output of {rel})")]
    findings: list[Finding] = []
    for entry in listing.entries:
        path = layout.object_rel(entry.sha256)
        if path not in seen:
            seen.add(path)
            findings += _check_object(store, path, entry.sha256, f"file {entry.path} of tree {digest[:12]}… in {rel}")
    return findings


def check_entry(store: store_mod.Store, rel: str, keys: Keys,
                records: dict[str, tuple[slsa.Tycho | None, list[Finding]]] | None = None
                ) -> tuple[documents.CacheEntry | None, list[Finding]]:
    """A cache entry and its problems: it must parse, sit under its key, and agree with a
    record that verifies (same key, same outputs, same metrics and distributions)."""
    data = _read(store, rel)
    if data is None:
        return None, [Finding(rel, "cache entry is missing")]
    try:
        entry = documents.CacheEntry.model_validate_json(data)
    except (pydantic.ValidationError, ValueError) as err:
        return None, [Finding(rel, f"cache entry does not parse: {str(err).splitlines()[0]}")]
    findings: list[Finding] = []
    if cache_mod.encode(entry) != data:
        findings.append(Finding(rel, "cache entry is not what Tycho wrote (edited or corrupt)"))
    if layout.cache_rel(entry.key) != rel:
        findings.append(Finding(rel, f"cache entry holds key {entry.key[:16]}…, not the key it is stored under"))
    cache = records if records is not None else {}
    if entry.record not in cache:
        cache[entry.record] = check_record(store, entry.record, keys)
    parsed, record_findings = cache[entry.record]
    if parsed is None or record_findings:
        why = record_findings[0].problem if record_findings else "unreadable"
        return entry, findings + [Finding(rel, f"cache entry points at a record that does not verify "
                                               f"({entry.record}: {why})")]
    doc = parsed.statement.model_dump(by_alias=True, exclude_none=True)
    if parsed.internal.cacheKey != entry.key:
        findings.append(Finding(rel, f"cache entry points at {entry.record}, the record of another key"))
    if record.outputs_of(doc) != entry.outputs or sorted(entry.directories) != record.directories_of(doc):
        findings.append(Finding(rel, f"cache entry outputs differ from those recorded in {entry.record}"))
    findings += _entry_blobs(store, rel, entry, doc)
    return entry, findings


def _entry_blobs(store: store_mod.Store, rel: str, entry: documents.CacheEntry,
                 doc: Mapping[str, Any]) -> list[Finding]:
    """The entry's metrics and distributions must be the record's (a hit serves them)."""
    try:
        metrics = json.loads(store.get_bytes(record.byproduct_digest(doc, "metrics") or ""))
        env_digest = record.byproduct_digest(doc, "environment")
        env = json.loads(store.get_bytes(env_digest)) if env_digest else {}
    except (FileNotFoundError, ValueError, store_mod.IntegrityError):
        return [Finding(rel, f"the byproducts of {entry.record} are missing or corrupt")]
    if metrics != entry.metrics:
        return [Finding(rel, f"cache entry metrics differ from those recorded in {entry.record}")]
    if (env.get("distributions") or None) != (entry.environment or None):
        return [Finding(rel, f"cache entry distributions differ from those recorded in {entry.record}")]
    return []


def record_paths(store: store_mod.Store, run_ids: Iterable[str]) -> list[str]:
    """The record paths of these runs, as stored (not as their summaries claim): a stage's
    ``records/<run>/<stage>.json`` and its trials' ``records/<run>/<stage>/trial-<n>.json``."""
    found = []
    for run in run_ids:
        folder = f"{layout.RECORDS}/{run}"
        for name in store.list(folder):
            if name.endswith(".json"):
                found.append(f"{folder}/{name}")
            elif "." not in name:  # a sweep stage's folder of trial records
                found += [f"{folder}/{name}/{t}" for t in store.list(f"{folder}/{name}") if t.endswith(".json")]
    return found


def check_summary(store: store_mod.Store, run_id: str, keys: Keys) -> tuple[documents.RunSummary | None, list[Finding]]:
    """A run summary: it parses, and once the run is over its seal verifies and names its bytes."""
    rel = layout.summary_rel(run_id)
    data = _read(store, rel)
    if data is None:
        return None, [Finding(rel, "run summary is missing")]
    try:
        summary = documents.RunSummary.model_validate_json(data)
    except (pydantic.ValidationError, ValueError) as err:
        return None, [Finding(rel, f"run summary does not parse: {str(err).splitlines()[0]}")]
    findings: list[Finding] = []
    if summary.run_id != run_id:
        findings.append(Finding(rel, f"run summary claims run {summary.run_id}"))
    att = layout.run_attestation_rel(run_id)
    bundle = _read(store, att)
    if bundle is None:
        if summary.phase != "Running":
            findings.append(Finding(rel, f"run summary is not sealed ({att} is missing)"))
        return summary, findings
    try:
        envelopes = signing.parse_bundle(bundle)
        if len(envelopes) != 1 or envelopes[0].encode() != bundle:
            raise signing.BadSignature("not exactly one canonical envelope")
        payload = signing.payload_of(envelopes[0])
        signing.verify(envelopes[0], payload, keys)
        statement = json.loads(payload)
        digest = statement["subject"][0]["digest"]["sha256"]
        if statement["subject"][0]["name"] != rel:
            raise signing.BadSignature(f"it seals {statement['subject'][0]['name']}")
    except (signing.BadSignature, ValueError, KeyError, IndexError, TypeError) as bad:
        return summary, findings + [Finding(att, f"seal of {rel} does not verify: {bad}")]
    if hashlib.sha256(data).hexdigest() != digest:
        findings.append(Finding(rel, "run summary changed after it was sealed"))
    return summary, findings


def check_summary_records(summary: documents.RunSummary, records: Mapping[str, tuple[slsa.Tycho | None, list[Finding]]]
                          ) -> list[Finding]:
    """What the summary says each stage produced must be what the records say."""
    rel = layout.summary_rel(summary.run_id)
    findings: list[Finding] = []
    for name, result in summary.stages.items():
        if result.phase not in phases.DONE or not result.record:
            continue
        parsed = records.get(result.record, (None, []))[0]
        if parsed is None:
            continue
        doc = parsed.statement.model_dump(by_alias=True, exclude_none=True)
        if record.outputs_of(doc) != result.outputs:
            findings.append(Finding(rel, f"stage {name}: outputs differ from those recorded in {result.record}"))
    return findings


def check_small(store: store_mod.Store, rel: str, expected: bytes, what: str) -> list[Finding]:
    """An index document must be exactly what Tycho writes for it."""
    data = _read(store, rel)
    if data is None:
        return [Finding(rel, f"{what} is missing")]
    return [] if data == expected else [Finding(rel, f"{what} is not what Tycho wrote (edited or corrupt)")]


def check_producer(store: store_mod.Store, rel: str, known: Mapping[str, tuple[slsa.Tycho | None, list[Finding]]],
                   keys: Keys) -> list[Finding]:
    """``producers/<hex>.json`` must name a record that lists that digest as an output."""
    digest = rel.removeprefix(layout.PRODUCERS + "/").removesuffix(".json")
    data = _read(store, rel)
    try:
        doc = json.loads(data or b"")
        record_rel = layout.rel(str(doc["record"]))
    except (ValueError, KeyError, TypeError):
        return [Finding(rel, "producer index does not parse")]
    if data != cache_mod.producer_bytes(digest, record_rel):
        return [Finding(rel, "producer index is not what Tycho wrote (edited or corrupt)")]
    parsed = known[record_rel][0] if record_rel in known else check_record(store, record_rel, keys)[0]
    if parsed is None or digest not in {s.digest["sha256"] for s in parsed.statement.subject}:
        return [Finding(rel, f"names {record_rel}, which does not record {digest[:12]}… as an output")]
    return []


def check_key(store: store_mod.Store, rel: str) -> list[Finding]:
    data = _read(store, rel) or b""
    try:
        public = signing.load_public(data)
    except ValueError:
        return [Finding(rel, "public key does not parse")]
    if layout.key_rel(signing.keyid(public)) != rel or signing.public_pem(public) != data:
        return [Finding(rel, "public key is not the key its name says (edited or corrupt)")]
    return []
