"""Invalid manifests never half-run: the CRD schema rejects malformed ones at the API
server; semantically invalid ones get phase Invalid with the field path, and no Job."""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import Space
from tycho.kube import client

pytestmark = pytest.mark.cluster


def test_the_crd_schema_rejects_a_malformed_manifest(space: Space) -> None:
    doc = space.toy(name="bad-schema")
    doc["spec"]["stages"][0]["retries"] = {"limit": "many"}
    doc["spec"]["maxParallel"] = 0
    with pytest.raises(client.ApiError) as err:
        space.apply(doc)
    assert err.value.status == 422
    assert "spec.stages[0].retries.limit" in str(err.value) and "spec.maxParallel" in str(err.value)


def test_a_semantically_invalid_manifest_is_marked_invalid_with_the_field_path_and_runs_nothing(space: Space) -> None:
    doc = space.toy(name="bad-graph")
    doc["spec"]["stages"][2]["inputs"][0]["from"] = "nope/total"
    space.apply(doc)
    status = space.wait_phase("Invalid", name="bad-graph")
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "InvalidManifest"
    assert "spec.stages[2].inputs[0].from: unknown stage 'nope'" in valid["message"]
    assert status["observedGeneration"] == space.pipeline("bad-graph")["metadata"]["generation"]
    time.sleep(1)
    assert space.jobs() == []
    space.wait_events("InvalidManifest", name="bad-graph")
    # Fixing the manifest makes it run.
    space.kube.patch_spec(space.ns, "bad-graph", {"stages": space.toy()["spec"]["stages"]})
    space.wait_job("generate")
    assert space.status("bad-graph")["phase"] == "Running"
