"""Invalid manifests never half-run: the API server refuses what the CRD can express
(schema, patterns, CEL rules across fields); what only the operator can check gets phase
Invalid with the field path, and no Job."""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.space import Space
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


def test_kubectl_apply_of_a_manifest_breaking_cross_field_rules_is_refused_by_the_server(space: Space) -> None:
    doc = space.toy(name="bad-rules")
    stages = doc["spec"]["stages"]
    stages[1]["name"] = "generate"  # two stages of one name
    stages[2]["inputs"][0]["from"] = "nope/total"  # a stage that does not exist
    stages[2]["inputs"][1]["from"] = "generate/numbers"  # both from and url
    stages[0]["env"] = [{"name": "MODE", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    stages[2]["name"] = "Report_1"  # not a DNS label
    out = space.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert out.returncode != 0
    assert "spec.stages[2].name" in out.stderr and "should match" in out.stderr
    stages[2]["name"] = "report"
    out = space.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert out.returncode != 0
    for expected in ('spec.stages[1]: Duplicate value: {"name":"generate"}',
                     "every inputs[].from must name a stage of this pipeline",
                     "spec.stages[2].inputs[1]: Invalid value", "set exactly one of from (STAGE/OUTPUT) and url",
                     "spec.stages[0].env[0]: Invalid value", "set exactly one of value and valueFrom"):
        assert expected in out.stderr, out.stderr
    assert space.kube.get_pipeline(space.ns, "bad-rules") is None


def test_a_pipeline_with_a_cycle_is_marked_invalid_with_the_field_path_and_runs_nothing(space: Space) -> None:
    """A cycle is what the API server cannot refuse (CEL has no graph search): the operator
    marks the pipeline Invalid before any Job exists."""
    doc = space.toy(name="bad-graph")
    stages = doc["spec"]["stages"]
    stages[0]["inputs"] = [{"name": "report", "from": "report/report"}]  # generate -> total -> report -> generate
    space.apply(doc)
    status = space.wait_phase("Invalid", name="bad-graph")
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "InvalidManifest"
    assert "spec.stages: cycle: " in valid["message"] and "generate" in valid["message"]
    assert status["observedGeneration"] == space.pipeline("bad-graph")["metadata"]["generation"]
    space.wait_events("InvalidManifest", name="bad-graph")
    assert space.jobs() == []  # the pass that wrote Invalid decided before creating anything
    # Fixing the manifest makes it run.
    space.kube.patch_spec(space.ns, "bad-graph", {"stages": space.toy()["spec"]["stages"]})
    space.wait_job("generate")
    assert space.status("bad-graph")["phase"] == "Running"
