"""Provenance records: an in-toto Statement v1 with a SLSA Provenance v1 predicate.

Built by the stage wrapper after a successful run (pure ``build`` below) and read by
``tycho lineage`` and ``tycho reproduce``. Fields: docs/contracts.md §4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tycho import __version__

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://tycho.dev/stage/v1"
BUILDER_ID = f"https://tycho.dev/builder/{__version__}"


def build(*, stage: str, pipeline: Mapping[str, Any], run_id: str, invocation_id: str,
          outputs: Mapping[str, str], output_uris: Mapping[str, str],
          params: Mapping[str, Any], command: list[str], args: list[str], env: Mapping[str, str],
          cache_key: str, inputs: list[Mapping[str, Any]], code: Mapping[str, Any],
          image: Mapping[str, Any], started: str, finished: str,
          metrics: Mapping[str, float], attempts: int) -> dict[str, Any]:
    """The record of one stage execution. ``env`` must hold no secret values."""
    code_dep: dict[str, Any] = {"name": "code", "digest": {"sha256": code["digest"]}}
    if code.get("uri"):
        code_dep["uri"] = code["uri"]
    annotations = {k: v for k, v in code.items() if k not in {"digest", "uri"} and v is not None}
    if annotations:
        code_dep["annotations"] = annotations
    image_dep: dict[str, Any] = {"name": "image", "uri": image["reference"]}
    if image.get("digest"):
        image_dep["digest"] = {"sha256": str(image["digest"]).removeprefix("sha256:")}
    if image.get("resolvedBy"):
        image_dep["annotations"] = {"resolvedBy": image["resolvedBy"]}
    deps = [
        {k: v for k, v in {
            "name": f"input:{i['name']}",
            "uri": i.get("uri"),
            "digest": {"sha256": i["sha256"]},
            "annotations": {"producer": i["producer"]} if i.get("producer") else None,
        }.items() if v is not None}
        for i in inputs
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "uri": output_uris[name], "digest": {"sha256": digest}}
            for name, digest in sorted(outputs.items())
        ],
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
                "resolvedDependencies": deps + [code_dep, image_dep],
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {"invocationId": invocation_id, "startedOn": started, "finishedOn": finished},
                "byproducts": [{"name": "metrics", "content": dict(metrics)},
                               {"name": "run", "content": {"runId": run_id, "attempts": attempts}}],
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


def metrics_of(record: Mapping[str, Any]) -> dict[str, float]:
    for item in record["predicate"]["runDetails"].get("byproducts", []):
        if item.get("name") == "metrics":
            return dict(item["content"])
    return {}
