"""The provenance record is an in-toto Statement v1 with a SLSA Provenance v1 predicate,
and parses strictly (``tycho.provenance.slsa``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tycho.planning import cachekey
from tycho.provenance import documents, layout, record, slsa

COMPONENTS = {"tycho": cachekey.KEY_SCHEMA, "cacheVersion": "1", "image": {"digest": "e" * 64},
              "command": ["python", "train.py"], "args": [], "env": {"MODE": "fast"}, "params": {"epochs": 3},
              "inputs": {"splits": "c" * 64, "raw": "f" * 64}, "outputs": ["history", "model/"], "code": "d" * 64}


def sample(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        stage="train", pipeline={"name": "digits", "uid": "u1", "generation": 3}, run_id="r1", invocation_id="job-uid",
        executor="kubernetes", outputs={"model": "a" * 64, "history": "b" * 64}, directories=["model"],
        params={"epochs": 3}, command=["python", "train.py"], args=[], env={"MODE": "fast"},
        cache_key=cachekey.key(COMPONENTS), key_components=COMPONENTS,
        inputs=[{"name": "splits", "sha256": "c" * 64, "producer": "records/r1/split.json"},
                {"name": "raw", "sha256": "f" * 64, "url": "s3://data/raw.csv"}],
        code=documents.CodeRef(digest="d" * 64, archive="objects/sha256/" + "d" * 64, commit="abc123", dirty=False),
        image=documents.ImageRef(reference="tycho/stage-cpu:0.1.0", digest="sha256:" + "e" * 64, resolved_by="kubelet"),
        started="2026-01-01T00:00:00Z", finished="2026-01-01T00:01:00Z", metrics_blob="9" * 64,
        metrics_log="8" * 64, environment_blob="7" * 64, attempts=2)
    args.update(over)
    return record.build(**args)


def test_statement_shape_with_subjects_named_by_store_uris() -> None:
    doc = sample()
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert doc["subject"] == [
        {"name": "history", "uri": "tycho:objects/sha256/" + "b" * 64, "digest": {"sha256": "b" * 64}},
        {"name": "model", "uri": "tycho:objects/sha256/" + "a" * 64, "digest": {"sha256": "a" * 64},
         "mediaType": "application/vnd.tycho.tree+json"}]


def test_predicate_carries_params_pipeline_env_and_dependencies() -> None:
    doc = sample()
    build = doc["predicate"]["buildDefinition"]
    assert build["externalParameters"]["params"] == {"epochs": 3}
    assert build["externalParameters"]["env"] == {"MODE": "fast"}
    assert build["externalParameters"]["pipeline"] == {"name": "digits", "uid": "u1", "generation": 3}
    assert build["internalParameters"]["keyComponents"] == COMPONENTS
    deps = {d["name"]: d for d in build["resolvedDependencies"]}
    assert deps["input:splits"]["annotations"]["producer"] == "records/r1/split.json"
    assert deps["input:splits"]["uri"] == "tycho:objects/sha256/" + "c" * 64
    assert deps["input:raw"]["uri"] == "s3://data/raw.csv" and "annotations" not in deps["input:raw"]
    assert deps["code"]["annotations"] == {"commit": "abc123", "dirty": False, "source": "archive"}
    assert deps["image"] == {"name": "image", "uri": "docker://tycho/stage-cpu:0.1.0", "digest": {"sha256": "e" * 64},
                             "annotations": {"resolvedBy": "kubelet"}}
    meta = doc["predicate"]["runDetails"]["metadata"]
    assert meta == {"invocationId": "job-uid", "startedOn": "2026-01-01T00:00:00Z",
                    "finishedOn": "2026-01-01T00:01:00Z"}


def test_byproducts_are_stored_resource_descriptors() -> None:
    byproducts = sample()["predicate"]["runDetails"]["byproducts"]
    assert [b["name"] for b in byproducts] == ["metrics", "metrics.jsonl", "environment"]
    for item in byproducts:
        assert item["uri"] == layout.store_uri(layout.object_rel(item["digest"]["sha256"]))


def test_each_executor_is_its_own_builder() -> None:
    kube = sample()["predicate"]["runDetails"]["builder"]["id"]
    local = sample(executor="subprocess")["predicate"]["runDetails"]["builder"]["id"]
    assert kube != local and "kubernetes" in kube and "subprocess" in local


def test_a_record_parses_strictly_and_consistently() -> None:
    parsed = slsa.parse(sample())
    assert parsed.internal.cacheKey == cachekey.key(COMPONENTS)
    assert parsed.external.stage == "train"


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["subject"][0].update(uri="objects/sha256/" + "b" * 64), "subject.0.uri"),
    (lambda d: d["subject"][0]["digest"].update(sha256="B" * 64), "subject.0.digest"),
    (lambda d: d["predicate"]["runDetails"]["byproducts"][0].update(content={"acc": 1}), "byproducts.0.content"),
    (lambda d: d["predicate"]["runDetails"].update(extra=1), "runDetails.extra"),
    (lambda d: d["predicate"]["runDetails"]["metadata"].update(startedOn="yesterday"), "metadata.startedOn"),
    (lambda d: d["predicate"]["buildDefinition"]["externalParameters"].pop("env"), "externalParameters.env"),
    (lambda d: d.update(subject=[]), "subject"),
])
def test_anything_off_schema_is_refused_with_its_field(edit: Any, where: str) -> None:
    doc = copy.deepcopy(sample())
    edit(doc)
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        slsa.parse(doc)


def test_readers_round_trip() -> None:
    doc = sample()
    assert record.outputs_of(doc) == {"model": "a" * 64, "history": "b" * 64}
    assert record.directories_of(doc) == ["model"]
    assert record.stage_of(doc) == "train" and record.run_of(doc) == "r1"
    assert record.byproduct_digest(doc, "environment") == "7" * 64
    assert record.code_of(doc).archive == "objects/sha256/" + "d" * 64
    paths = {p for _, p, _ in record.store_paths(doc)}
    assert "objects/sha256/" + "f" * 64 not in paths  # the external input is not in the store
    assert {"objects/sha256/" + c * 64 for c in "abcd987"} == paths


def test_records_written_with_absolute_uris_still_read() -> None:
    doc = sample()
    code = next(d for d in doc["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "code")
    code["uri"] = "s3://old-bucket/prefix/objects/sha256/" + "d" * 64
    code["annotations"] = {"commit": "abc123"}
    assert record.code_of(doc).archive == "objects/sha256/" + "d" * 64


def test_the_sbom_of_the_image_is_a_stored_dependency_beside_the_image_and_parses_strictly() -> None:
    doc = sample(image_sbom="5" * 64)
    slsa.parse(doc)
    deps = record.dependencies(doc)
    assert [d["name"] for d in deps][-2:] == ["image", "image-sbom"]
    assert deps[-1] == {"name": "image-sbom", "uri": "tycho:objects/sha256/" + "5" * 64, "digest": {"sha256": "5" * 64},
                        "mediaType": "application/vnd.cyclonedx+json"}
    assert record.image_sbom(doc) == "5" * 64 and record.image_sbom(sample()) is None
    assert ("image-sbom", "objects/sha256/" + "5" * 64, "5" * 64) in record.store_paths(doc)  # verify re-hashes it
