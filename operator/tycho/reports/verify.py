"""``tycho verify [RUN ...|--all]``: check that a store's records can be trusted.

For the runs asked about (or every run, with ``--all``): every record parses strictly as
an in-toto Statement v1 with a SLSA Provenance v1 predicate, is signed by a trusted key,
recomputes to its cache key and agrees with where it is stored; every object a record
names is re-hashed (tree outputs file by file); every cache entry agrees with its record;
run summaries are sealed and agree with their records; the indexes (producers, run
markers, public keys) are exactly what Tycho wrote. With ``--all`` every object in the
store is re-hashed too. Each problem is one line naming the store path at fault.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic

from tycho.provenance import audit, hashing, layout, runs, slsa, store as store_mod


class Report(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=pydantic.alias_generators.to_camel, populate_by_name=True)

    store: str
    runs: list[str]
    checked: dict[str, int]
    """How many of each kind were checked: records, objects, cacheEntries, summaries, ..."""
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _runs_on_disk(store: store_mod.Store) -> list[str]:
    return sorted({name.removesuffix(".json") for name in store.list(layout.RUNS) if name.endswith(".json")}
                  | set(store.list(layout.RECORDS)))


def verify(store: store_mod.Store, run_ids: Sequence[str] | None, keys: audit.Keys) -> Report:
    """``run_ids`` None: the whole store."""
    everything = run_ids is None
    wanted = _runs_on_disk(store) if run_ids is None else list(run_ids)
    findings: list[audit.Finding] = []
    records: dict[str, tuple[slsa.Tycho | None, list[audit.Finding]]] = {}
    seen_objects: set[str] = set()
    count = {"runs": 0, "records": 0, "objects": 0, "cacheEntries": 0, "producers": 0, "markers": 0, "keys": 0}
    keys_used: dict[str, str] = {}
    for run_id in wanted:
        count["runs"] += 1
        summary, found = audit.check_summary(store, run_id, keys)
        findings += found
        for rel in audit.record_paths(store, [run_id]):
            count["records"] += 1
            parsed, problems = records[rel] = audit.check_record(store, rel, keys)
            findings += problems
            if parsed is not None:
                doc = parsed.statement.model_dump(by_alias=True, exclude_none=True)
                findings += audit.check_objects(store, doc, rel, seen_objects)
                keys_used[parsed.internal.cacheKey] = rel
        if summary is not None:
            findings += audit.check_summary_records(summary, records)
            for name, result in summary.stages.items():
                if result.record and result.record not in records and result.phase in ("Succeeded",):
                    findings.append(audit.Finding(layout.summary_rel(run_id), f"stage {name}: its record "
                                                  f"{result.record} is missing"))
            marker = layout.pipeline_run_marker(summary.pipeline, summary.created_at, run_id)
            if not everything:
                count["markers"] += 1
                findings += audit.check_small(store, marker, runs.marker_bytes(run_id), "run marker")
    entries = ([layout.cache_rel(k) for k in keys_used] if not everything
               else [f"{layout.CACHE}/{n}" for n in store.list(layout.CACHE) if n.endswith(".json")])
    for rel in entries:
        if not everything and not store.exists(rel):
            continue  # superseded by a later execution of the same key: not this run's to answer for
        count["cacheEntries"] += 1
        findings += audit.check_entry(store, rel, keys, records)[1]
    if everything:
        findings += _indexes(store, records, keys, count)
        for name in store.list(layout.OBJECTS):
            rel = f"{layout.OBJECTS}/{name}"
            if rel in seen_objects or ".tmp-" in name:
                continue
            count["objects"] += 1
            if not store.verify(name):
                findings.append(audit.Finding(rel, "does not hash to its name"))
    count["objects"] += len(seen_objects)
    if everything and not any(count.values()):  # a typo in a URL must not read as a store that verifies
        findings.append(audit.Finding(store.url, "holds no runs, records, objects or cache entries: it is not a "
                                                 "Tycho store (give the URL that runs wrote to)"))
    unique = list(dict.fromkeys(str(f) for f in findings))
    return Report(store=store.url, runs=wanted, checked=count, problems=unique)


def _indexes(store: store_mod.Store, records: dict[str, tuple[slsa.Tycho | None, list[audit.Finding]]],
             keys: audit.Keys, count: dict[str, int]) -> list[audit.Finding]:
    findings: list[audit.Finding] = []
    for name in store.list(layout.PRODUCERS):
        count["producers"] += 1
        findings += audit.check_producer(store, f"{layout.PRODUCERS}/{name}", records, keys)
    for pipeline in store.list(layout.PIPELINES):
        for name in store.list(layout.pipeline_runs_dir(pipeline)):
            count["markers"] += 1
            rel = f"{layout.pipeline_runs_dir(pipeline)}/{name}"
            findings += audit.check_small(store, rel, runs.marker_bytes(layout.run_id_of_marker(name)), "run marker")
    for name in store.list(layout.KEYS):
        count["keys"] += 1
        findings += audit.check_key(store, f"{layout.KEYS}/{name}")
    for name in store.list(layout.suggestions_dir()):
        if name.endswith(".json"):
            count["suggestions"] = count.get("suggestions", 0) + 1
            findings += _check_suggestions(store, f"{layout.suggestions_dir()}/{name}")
    return findings


def _check_suggestions(store: store_mod.Store, rel: str) -> list[audit.Finding]:
    """A sweep's remembered suggestions: named by the digest of their question, and what the
    search answers to that question when asked again (it is seeded: a pure function)."""
    from tycho.engine import search

    try:
        doc = store.read_json(rel)
        asked, stored = doc["question"], doc["suggestions"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return [audit.Finding(rel, "sweep suggestions do not parse")]
    if not isinstance(asked, str) or layout.suggestions_rel(hashing.sha256_bytes(asked.encode())) != rel:
        return [audit.Finding(rel, "sweep suggestions are stored under a name that is not the digest of "
                                   "their question")]
    try:
        again = search.answer(asked)
    except (ValueError, KeyError, TypeError, IndexError, pydantic.ValidationError) as err:
        return [audit.Finding(rel, f"sweep suggestions: the question cannot be asked again ({err})")]
    if again != stored:
        return [audit.Finding(rel, "sweep suggestions differ from what the search answers to their question")]
    return []
