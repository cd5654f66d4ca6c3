"""``tycho lineage REF``: walk from an output back through every stage to the raw data.

REF is a digest (``sha256:HEX`` or ``HEX``) or ``RUN/STAGE/OUTPUT``. Each step is read
from the producing stage's provenance record; inputs name their producer records, so
the walk needs no run summaries and works on records alone.
"""

from __future__ import annotations

from typing import Any

from tycho.provenance import audit, layout, record, runs, store as store_mod


def resolve_ref(store: store_mod.Store, ref: str) -> str:
    """The sha256 a REF names."""
    parts = ref.split("/")
    if len(parts) == 3:
        run_id, stage, output = parts
        summary = runs.load(store, run_id)
        try:
            return summary.stages[stage].outputs[output]
        except KeyError:
            raise LookupError(f"run {run_id} has no output {stage}/{output}") from None
    digest = ref.removeprefix("sha256:")
    if len(digest) != 64:
        raise LookupError(f"{ref!r} is neither a sha256 digest nor RUN/STAGE/OUTPUT (`tycho show RUN` lists a "
                          "run's outputs and their digests)")
    return digest


def producer(store: store_mod.Store, digest: str) -> str | None:
    """The store path of the record that produced a digest, if any did."""
    rel = layout.producer_rel(digest)
    return layout.rel(str(store.read_json(rel)["record"])) if store.exists(rel) else None


def walk(store: store_mod.Store, ref: str, keys: audit.Keys | None = None) -> list[dict[str, Any]]:
    """Steps from the output back to raw data, each once, nearest first. Every record on
    the way must verify (strict schema, signature by one of ``keys``); an edited one stops
    the walk with the finding."""
    keys = audit.trusted_keys(store) if keys is None else keys
    start = resolve_ref(store, ref)
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    queue: list[tuple[str, str | None]] = [(start, producer(store, start))]
    while queue:
        digest, rec_uri = queue.pop(0)
        if rec_uri is None:
            if digest not in seen:
                seen.add(digest)
                steps.append({"kind": "raw", "sha256": digest})
            continue
        if rec_uri in seen:
            continue
        seen.add(rec_uri)
        parsed, problems = audit.check_record(store, rec_uri, keys)
        if parsed is None or problems:
            raise LookupError(f"{problems[0]} (lineage follows verified records only; run `tycho verify`)")
        doc = parsed.statement.model_dump(by_alias=True, exclude_none=True)
        deps = record.dependencies(doc)
        by_name = {d["name"]: d for d in deps}
        build = doc["predicate"]["buildDefinition"]
        step = {
            "kind": "stage", "stage": record.stage_of(doc), "record": rec_uri,
            "run": parsed.internal.runId,
            "outputs": record.outputs_of(doc),
            "image": {"reference": str(by_name["image"].get("uri", "")).removeprefix("docker://"),
                      "digest": by_name["image"].get("digest", {}).get("sha256")},
            "code": {"digest": by_name["code"]["digest"]["sha256"], **by_name["code"].get("annotations", {})},
            "params": build["externalParameters"]["params"],
            "inputs": [{"name": d["name"].removeprefix("input:"), "sha256": d["digest"]["sha256"],
                        "uri": d.get("uri"), "producer": _rel(d.get("annotations", {}).get("producer"))}
                       for d in deps if d["name"].startswith("input:")],
        }
        steps.append(step)
        for inp in step["inputs"]:
            if inp["producer"]:
                queue.append((inp["sha256"], inp["producer"]))
            else:
                steps_raw = {"kind": "raw", "sha256": inp["sha256"], "uri": inp["uri"]}
                if inp["sha256"] not in seen:
                    seen.add(inp["sha256"])
                    steps.append(steps_raw)
    return steps


def _rel(ref: str | None) -> str | None:
    return layout.rel(ref) if ref else None
