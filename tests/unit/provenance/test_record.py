"""The provenance record is an in-toto Statement v1 with a SLSA Provenance v1 predicate."""

from __future__ import annotations

from tycho.provenance import record


def sample() -> dict[str, object]:
    return record.build(
        stage="train", pipeline={"name": "digits", "uid": "u1", "generation": 3}, run_id="r1", invocation_id="job-uid",
        outputs={"model": "a" * 64, "history": "b" * 64}, output_uris={"model": "s3://x/a", "history": "s3://x/b"},
        params={"epochs": 3}, command=["python", "train.py"], args=[], env={"MODE": "fast"}, cache_key="k" * 64,
        inputs=[{"name": "splits", "uri": "s3://x/c", "sha256": "c" * 64, "producer": "s3://x/records/r1/split.json"}],
        code={"digest": "d" * 64, "uri": "s3://x/d", "commit": "abc123", "dirty": False},
        image={"reference": "tycho/stage-cpu:0.1.0", "digest": "sha256:" + "e" * 64},
        started="2026-01-01T00:00:00Z", finished="2026-01-01T00:01:00Z", metrics={"acc": 0.9}, attempts=2)


def test_statement_shape() -> None:
    doc = sample()
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert doc["subject"] == [{"name": "history", "uri": "s3://x/b", "digest": {"sha256": "b" * 64}},
                              {"name": "model", "uri": "s3://x/a", "digest": {"sha256": "a" * 64}}]


def test_predicate_carries_params_pipeline_and_dependencies() -> None:
    doc = sample()
    build = doc["predicate"]["buildDefinition"]  # type: ignore[index]
    assert build["externalParameters"]["params"] == {"epochs": 3}
    assert build["externalParameters"]["pipeline"] == {"name": "digits", "uid": "u1", "generation": 3}
    deps = {d["name"]: d for d in build["resolvedDependencies"]}
    assert deps["input:splits"]["annotations"]["producer"].endswith("split.json")
    assert deps["code"]["annotations"] == {"commit": "abc123", "dirty": False}
    assert deps["image"]["digest"] == {"sha256": "e" * 64}
    meta = doc["predicate"]["runDetails"]["metadata"]  # type: ignore[index]
    assert meta == {"invocationId": "job-uid", "startedOn": "2026-01-01T00:00:00Z", "finishedOn": "2026-01-01T00:01:00Z"}


def test_readers_round_trip() -> None:
    doc = sample()
    assert record.outputs_of(doc) == {"model": "a" * 64, "history": "b" * 64}
    assert record.stage_of(doc) == "train"
    assert record.metrics_of(doc) == {"acc": 0.9}
