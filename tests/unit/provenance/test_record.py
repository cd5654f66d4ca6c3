"""The provenance record is an in-toto Statement v1 with a SLSA Provenance v1 predicate."""

from __future__ import annotations

from typing import Any

from tycho.provenance import documents, record


def sample(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        stage="train", pipeline={"name": "digits", "uid": "u1", "generation": 3}, run_id="r1", invocation_id="job-uid",
        executor="kubernetes", outputs={"model": "a" * 64, "history": "b" * 64}, directories=["model"],
        params={"epochs": 3}, command=["python", "train.py"], args=[], env={"MODE": "fast"}, cache_key="k" * 64,
        inputs=[{"name": "splits", "sha256": "c" * 64, "producer": "records/r1/split.json"},
                {"name": "raw", "sha256": "f" * 64, "url": "s3://data/raw.csv"}],
        code=documents.CodeRef(digest="d" * 64, archive="objects/sha256/" + "d" * 64, commit="abc123", dirty=False),
        image=documents.ImageRef(reference="tycho/stage-cpu:0.1.0", digest="sha256:" + "e" * 64, resolved_by="kubelet"),
        started="2026-01-01T00:00:00Z", finished="2026-01-01T00:01:00Z", metrics={"acc": 0.9}, metrics_blob="9" * 64,
        attempts=2, environment={"numpy": "1.26.4"})
    args.update(over)
    return record.build(**args)


def test_statement_shape_with_subjects_named_relative_to_the_store() -> None:
    doc = sample()
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert doc["subject"] == [
        {"name": "history", "uri": "objects/sha256/" + "b" * 64, "digest": {"sha256": "b" * 64}},
        {"name": "model", "uri": "objects/sha256/" + "a" * 64, "digest": {"sha256": "a" * 64},
         "mediaType": "application/vnd.tycho.tree+json"}]


def test_predicate_carries_params_pipeline_and_dependencies() -> None:
    doc = sample()
    build = doc["predicate"]["buildDefinition"]
    assert build["externalParameters"]["params"] == {"epochs": 3}
    assert build["externalParameters"]["pipeline"] == {"name": "digits", "uid": "u1", "generation": 3}
    deps = {d["name"]: d for d in build["resolvedDependencies"]}
    assert deps["input:splits"]["annotations"]["producer"] == "records/r1/split.json"
    assert deps["input:splits"]["uri"] == "objects/sha256/" + "c" * 64
    assert deps["input:raw"]["uri"] == "s3://data/raw.csv" and "annotations" not in deps["input:raw"]
    assert deps["code"]["annotations"] == {"commit": "abc123", "dirty": False, "source": "archive"}
    assert deps["image"]["digest"] == {"sha256": "e" * 64}
    meta = doc["predicate"]["runDetails"]["metadata"]
    assert meta == {"invocationId": "job-uid", "startedOn": "2026-01-01T00:00:00Z", "finishedOn": "2026-01-01T00:01:00Z"}


def test_each_executor_is_its_own_builder() -> None:
    kube = sample()["predicate"]["runDetails"]["builder"]["id"]
    local = sample(executor="subprocess")["predicate"]["runDetails"]["builder"]["id"]
    assert kube != local and "kubernetes" in kube and "subprocess" in local


def test_readers_round_trip() -> None:
    doc = sample()
    assert record.outputs_of(doc) == {"model": "a" * 64, "history": "b" * 64}
    assert record.stage_of(doc) == "train"
    assert record.byproduct(doc, "metrics") == {"name": "metrics", "content": {"acc": 0.9}}
    assert record.byproduct(doc, "environment")["content"] == {"distributions": {"numpy": "1.26.4"}}  # type: ignore[index]
    assert record.code_of(doc).archive == "objects/sha256/" + "d" * 64


def test_records_written_with_absolute_uris_still_read() -> None:
    doc = sample()
    code = next(d for d in doc["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "code")
    code["uri"] = "s3://old-bucket/prefix/objects/sha256/" + "d" * 64
    code["annotations"] = {"commit": "abc123"}
    assert record.code_of(doc).archive == "objects/sha256/" + "d" * 64
