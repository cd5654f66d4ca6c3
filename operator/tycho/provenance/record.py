"""Provenance records: an in-toto Statement v1 with a SLSA Provenance v1 predicate.

Built by the stage wrapper after a successful execution (pure ``build`` below), signed
(``tycho.provenance.signing``), and read by ``tycho lineage``, ``reproduce``, ``verify``
and the engine's cache lookup. It parses strictly (``tycho.provenance.slsa``): store
content is named by ``tycho:<store-relative path>`` URIs (``layout.store_uri``), so the
records of a store copied elsewhere still resolve; byproducts (metrics, the metrics log,
the execution environment) are stored objects named by digest and URI. Where each fact
lives: docs/contracts.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tycho import __version__
from tycho.provenance import documents, jsondoc, layout, slsa, tree

STATEMENT_TYPE = slsa.STATEMENT_TYPE
PREDICATE_TYPE = slsa.PREDICATE_TYPE
BUILD_TYPE = slsa.BUILD_TYPE
JSON = "application/json"
JSONL = "application/jsonl"
CYCLONEDX = "application/vnd.cyclonedx+json"
IMAGE_SBOM = "image-sbom"
"""The resolved dependency naming the SBOM of the image the stage ran in."""


def builder_id(executor: str) -> str:
    """One builder per executor: what ran the stage is part of the claim."""
    return f"https://tycho.dev/builders/{executor}@v{__version__}"


def image_uri(reference: str) -> str:
    """An image reference as a URI (the transport prefix skopeo and cosign read)."""
    return reference if "://" in reference else f"docker://{reference}"


def _input(item: Mapping[str, Any]) -> dict[str, Any]:
    dep: dict[str, Any] = {"name": f"input:{item['name']}", "digest": {"sha256": item["sha256"]}}
    dep["uri"] = item["url"] if item.get("url") else layout.store_uri(layout.object_rel(item["sha256"]))
    annotations = {k: item[k] for k in ("producer", "type") if item.get(k) and item[k] != "file"}
    if annotations:
        dep["annotations"] = annotations
    if item.get("type") == "directory":
        dep["mediaType"] = tree.MEDIA_TYPE
    return dep


def _blob(name: str, digest: str, media_type: str) -> dict[str, Any]:
    return {"name": name, "uri": layout.store_uri(layout.object_rel(digest)), "digest": {"sha256": digest},
            "mediaType": media_type}


def encode(doc: Mapping[str, Any]) -> bytes:
    """The bytes a record is stored (and signed) as."""
    return jsondoc.encode(doc)


def build(*, stage: str, pipeline: Mapping[str, Any], run_id: str, invocation_id: str, executor: str,
          outputs: Mapping[str, str], directories: Sequence[str], params: Mapping[str, Any], command: list[str],
          args: list[str], env: Mapping[str, str], cache_key: str, key_components: Mapping[str, Any],
          inputs: Sequence[Mapping[str, Any]], code: documents.CodeRef, image: documents.ImageRef, started: str,
          finished: str, metrics_blob: str, metrics_log: str, environment_blob: str | None,
          attempts: int, trial: int | None = None, stopped: int | None = None,
          checks_blob: str | None = None, image_sbom: str | None = None) -> dict[str, Any]:
    """The record of one stage execution. ``env`` must hold no secret values; ``inputs``
    items have name, sha256, and url (external) or producer (a record path); the blobs
    (last metric values, the metrics log, the execution environment) are already stored,
    as is ``image_sbom``, the CycloneDX SBOM of the image the stage ran in (if it has one)."""
    code_dep: dict[str, Any] = {"name": "code", "digest": {"sha256": code.digest}}
    if code.archive:
        code_dep["uri"] = layout.store_uri(layout.rel(code.archive))
        code_dep["mediaType"] = "application/x-tar"
    annotations = code.model_dump(by_alias=True, exclude_none=True, exclude={"digest", "archive"})
    if annotations:
        code_dep["annotations"] = annotations
    image_dep: dict[str, Any] = {"name": "image", "uri": image_uri(image.reference)}
    if image.digest:
        image_dep["digest"] = {"sha256": image.digest.removeprefix("sha256:")}
    if image.resolved_by:
        image_dep["annotations"] = {"resolvedBy": image.resolved_by}
    image_deps = [image_dep]
    if image_sbom is not None:
        image_deps.append(_blob(IMAGE_SBOM, image_sbom, CYCLONEDX))
    subjects = []
    for name, digest in sorted(outputs.items()):
        subject: dict[str, Any] = {"name": name, "uri": layout.store_uri(layout.object_rel(digest)),
                                   "digest": {"sha256": digest}}
        if name in directories:
            subject["mediaType"] = tree.MEDIA_TYPE
        subjects.append(subject)
    byproducts = [_blob("metrics", metrics_blob, JSON), _blob("metrics.jsonl", metrics_log, JSONL)]
    if environment_blob is not None:
        byproducts.append(_blob("environment", environment_blob, JSON))
    if checks_blob is not None:
        byproducts.append(_blob("checks", checks_blob, JSON))
    internal: dict[str, Any] = {"cacheKey": cache_key, "keyComponents": dict(key_components), "runId": run_id,
                                "attempts": attempts}
    if trial is not None:
        internal["trial"] = trial
    if stopped is not None:
        internal["stoppedAt"] = stopped  # early stopping: the only subject is the metrics log
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
                    "env": dict(sorted(env.items())),
                },
                "internalParameters": internal,
                "resolvedDependencies": [_input(i) for i in inputs] + [code_dep, *image_deps],
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


def directories_of(record: Mapping[str, Any]) -> list[str]:
    """The outputs that are directories (stored as trees)."""
    return sorted(s["name"] for s in record["subject"] if s.get("mediaType") == tree.MEDIA_TYPE)


def dependencies(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(record["predicate"]["buildDefinition"]["resolvedDependencies"])


def stage_of(record: Mapping[str, Any]) -> str:
    return str(record["predicate"]["buildDefinition"]["externalParameters"]["stage"])


def run_of(record: Mapping[str, Any]) -> str | None:
    internal = record["predicate"]["buildDefinition"].get("internalParameters") or {}
    return str(internal["runId"]) if internal.get("runId") else None


def byproduct(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for item in record["predicate"]["runDetails"].get("byproducts", []):
        if item.get("name") == name:
            return dict(item)
    return None


def byproduct_digest(record: Mapping[str, Any], name: str) -> str | None:
    """The sha256 of a stored byproduct (environment, metrics, metrics.jsonl)."""
    item = byproduct(record, name)
    return str(item["digest"]["sha256"]) if item and item.get("digest") else None


def image_sbom(record: Mapping[str, Any]) -> str | None:
    """The sha256 of the stored SBOM of the image the stage ran in, if the record names one."""
    dep = next((d for d in dependencies(record) if d.get("name") == IMAGE_SBOM), None)
    return str(dep["digest"]["sha256"]) if dep and dep.get("digest") else None


def store_paths(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every (role, store path, sha256) a record names inside its store: outputs, inputs,
    code archive, byproducts. External inputs (other URLs) are not in the store."""
    found: list[tuple[str, str, str]] = []
    items = ([("output " + s["name"], s) for s in record["subject"]]
             + [(d["name"], d) for d in dependencies(record)]
             + [("byproduct " + b["name"], b) for b in record["predicate"]["runDetails"].get("byproducts", [])])
    for role, item in items:
        uri, digest = item.get("uri"), (item.get("digest") or {}).get("sha256")
        if uri and digest and str(uri).startswith(layout.SCHEME):
            found.append((role, layout.rel(uri), digest))
    return found


def code_of(record: Mapping[str, Any]) -> documents.CodeRef:
    """The code a record names (archive path relative to the store, also from older URIs)."""
    dep = next(d for d in dependencies(record) if d["name"] == "code")
    notes = dep.get("annotations", {})
    return documents.CodeRef(digest=dep["digest"]["sha256"], archive=layout.rel(dep["uri"]) if dep.get("uri") else None,
                             commit=notes.get("commit"), dirty=notes.get("dirty"),
                             source=notes.get("source", "archive" if dep.get("uri") else "image-reference"))
