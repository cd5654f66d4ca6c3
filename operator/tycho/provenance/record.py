"""Provenance records: an in-toto Statement v1 with a SLSA Provenance v1 predicate.

Built by the stage wrapper after a successful execution (pure ``build`` below) and read
by ``tycho lineage``, ``tycho reproduce`` and the engine. Store content is named by
store-relative paths (``tycho.provenance.layout``), so the records of a store copied
elsewhere still resolve. Fields: docs/contracts.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tycho import __version__
from tycho.provenance import documents, layout, tree

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://tycho.dev/stage/v1"


def builder_id(executor: str) -> str:
    """One builder per executor: what ran the stage is part of the claim."""
    return f"https://tycho.dev/builders/{executor}@v{__version__}"


def _input(item: Mapping[str, Any]) -> dict[str, Any]:
    dep: dict[str, Any] = {"name": f"input:{item['name']}", "digest": {"sha256": item["sha256"]}}
    if item.get("url"):
        dep["uri"] = item["url"]
    else:
        dep["uri"] = layout.object_rel(item["sha256"])
    annotations = {k: item[k] for k in ("producer", "type") if item.get(k) and item[k] != "file"}
    if annotations:
        dep["annotations"] = annotations
    return dep


def build(*, stage: str, pipeline: Mapping[str, Any], run_id: str, invocation_id: str, executor: str,
          outputs: Mapping[str, str], directories: Sequence[str], params: Mapping[str, Any], command: list[str],
          args: list[str], env: Mapping[str, str], cache_key: str, inputs: Sequence[Mapping[str, Any]],
          code: documents.CodeRef, image: documents.ImageRef, started: str, finished: str, metrics: Mapping[str, float],
          metrics_blob: str, attempts: int, environment: Mapping[str, str] | None) -> dict[str, Any]:
    """The record of one stage execution. ``env`` must hold no secret values; ``inputs``
    items have name, sha256, and url (external) or producer (a record path)."""
    code_dep: dict[str, Any] = {"name": "code", "digest": {"sha256": code.digest}}
    if code.archive:
        code_dep["uri"] = code.archive
    annotations = code.model_dump(by_alias=True, exclude_none=True, exclude={"digest", "archive"})
    if annotations:
        code_dep["annotations"] = annotations
    image_dep: dict[str, Any] = {"name": "image", "uri": image.reference}
    if image.digest:
        image_dep["digest"] = {"sha256": image.digest.removeprefix("sha256:")}
    if image.resolved_by:
        image_dep["annotations"] = {"resolvedBy": image.resolved_by}
    subjects = []
    for name, digest in sorted(outputs.items()):
        subject: dict[str, Any] = {"name": name, "uri": layout.object_rel(digest), "digest": {"sha256": digest}}
        if name in directories:
            subject["mediaType"] = tree.MEDIA_TYPE
        subjects.append(subject)
    byproducts: list[dict[str, Any]] = [
        {"name": "metrics", "content": dict(metrics)},
        {"name": "metrics.jsonl", "digest": {"sha256": metrics_blob}, "uri": layout.object_rel(metrics_blob)},
        {"name": "run", "content": {"runId": run_id, "attempts": attempts}},
    ]
    if environment is not None:
        byproducts.append({"name": "environment", "content": {"distributions": dict(sorted(environment.items()))}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "pipeline": dict(pipeline),
                    "stage": stage,
                    "params": dict(params),
                    "command": list(command),
                    "args": list(args),
                },
                "internalParameters": {"cacheKey": cache_key, "env": dict(sorted(env.items()))},
                "resolvedDependencies": [_input(i) for i in inputs] + [code_dep, image_dep],
            },
            "runDetails": {
                "builder": {"id": builder_id(executor)},
                "metadata": {"invocationId": invocation_id, "startedOn": started, "finishedOn": finished},
                "byproducts": byproducts,
            },
        },
    }


def outputs_of(record: Mapping[str, Any]) -> dict[str, str]:
    """Output name -> sha256 of a record."""
    return {s["name"]: s["digest"]["sha256"] for s in record["subject"]}


def dependencies(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(record["predicate"]["buildDefinition"]["resolvedDependencies"])


def stage_of(record: Mapping[str, Any]) -> str:
    return str(record["predicate"]["buildDefinition"]["externalParameters"]["stage"])


def byproduct(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for item in record["predicate"]["runDetails"].get("byproducts", []):
        if item.get("name") == name:
            return dict(item)
    return None


def code_of(record: Mapping[str, Any]) -> documents.CodeRef:
    """The code a record names (archive path relative to the store, also from older URIs)."""
    dep = next(d for d in dependencies(record) if d["name"] == "code")
    notes = dep.get("annotations", {})
    return documents.CodeRef(digest=dep["digest"]["sha256"], archive=layout.rel(dep["uri"]) if dep.get("uri") else None,
                        commit=notes.get("commit"), dirty=notes.get("dirty"),
                        source=notes.get("source", "archive" if dep.get("uri") else "image-reference"))
