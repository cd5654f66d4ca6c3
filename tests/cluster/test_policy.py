"""Cluster admins' policy: the operator refuses a violating pipeline (phase Invalid, with
the field path), and the chart's ValidatingAdmissionPolicy makes the real API server
refuse it on apply."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.space import Space
from tests.deploy._support import go_tool
from tests.support.cluster import REPO
from tests.support.waiting import wait_for
from tycho.kube import client

pytestmark = pytest.mark.cluster


def test_the_operator_marks_a_pipeline_outside_policy_invalid_with_field_paths(space: Space) -> None:
    space.operator.kill()
    space.operator.extra_env = {"TYCHO_ALLOWED_REGISTRIES": "ghcr.io/acme/", "TYCHO_ALLOWED_TOLERATION_KEYS": "gpu"}
    space.operator.start()
    doc = space.toy()
    doc["spec"]["stages"][0]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    space.apply(doc)
    status = space.wait_phase("Invalid")
    assert "spec.stages[0].image: 'tycho/stage-cpu:test' is not from an allowed registry" in status["message"]
    assert "spec.stages[0].tolerations[0].key" in status["message"]
    assert not space.jobs()


def _render(tmp: Path, ns: str) -> list[dict[str, Any]]:
    values = {"policy": {"allowedRegistries": ["ghcr.io/acme/"], "requireDigests": True,
                         "allowedSecrets": ["tycho-store"],
                         "admission": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}},
              "networkPolicy": {"enabled": False}}
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run([go_tool("helm"), "template", "t", str(REPO / "charts" / "tycho"), "-n", "tycho-system",
                          "--kube-version", "1.34", "-f", str(path), "--show-only", "templates/admission-policy.yaml"],
                         capture_output=True, text=True, check=True, timeout=120)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_the_api_server_refuses_a_pipeline_outside_the_admission_policy(space: Space) -> None:
    objs = _render(space.tmp, space.ns)
    assert [o["kind"] for o in objs] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    files = space.tmp / "policy.yaml"
    files.write_text(yaml.safe_dump_all(objs))
    space.cluster.kubectl("apply", "-f", str(files))
    try:
        bad = space.toy("bad")

        def refused() -> str | None:
            try:
                space.apply(bad)
            except client.ApiError as err:
                return str(err)
            space.kube.delete_pipeline(space.ns, "bad")  # the policy is not in force yet
            return None

        message = wait_for(refused, 30, "the admission policy to refuse a pipeline")
        assert "must come from an allowed registry" in message and "ghcr.io/acme/" in message
        good = space.toy("good")
        for stage in good["spec"]["stages"]:
            stage["image"] = "ghcr.io/acme/stage@sha256:" + "a" * 64
        space.apply(good)  # within policy: accepted
        secret = space.toy("secret")
        for stage in secret["spec"]["stages"]:
            stage["image"] = "ghcr.io/acme/stage@sha256:" + "a" * 64
        secret["spec"]["stages"][0]["env"] = [
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]
        with pytest.raises(client.ApiError, match="Secret not allowed"):
            space.apply(secret)
    finally:
        space.cluster.kubectl("delete", "-f", str(files), "--ignore-not-found", check=False)


def test_the_network_policies_are_accepted_by_the_api_server_and_isolate_stage_pods(space: Space) -> None:
    path = space.tmp / "np-values.yaml"
    path.write_text(yaml.safe_dump({"watchNamespaces": [space.ns], "minio": {"enabled": True}}))
    out = subprocess.run([go_tool("helm"), "template", "t", str(REPO / "charts" / "tycho"), "-n", space.ns,
                          "--kube-version", "1.34", "-f", str(path), "--show-only", "templates/networkpolicy.yaml"],
                         capture_output=True, text=True, check=True, timeout=120)
    policies = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out.stdout) if d}
    stages = policies["t-tycho-stages"]["spec"]
    assert stages["policyTypes"] == ["Ingress", "Egress"] and stages["ingress"] == []
    assert {"key": "tycho.dev/network", "operator": "DoesNotExist"} in stages["podSelector"]["matchExpressions"]
    ports = sorted(p["port"] for rule in stages["egress"] for p in rule["ports"])
    assert ports == [53, 53, 9000]  # DNS and the store, nothing else
    assert policies["t-tycho-networked-stages"]["spec"]["policyTypes"] == ["Ingress"]
    files = space.tmp / "np.yaml"
    files.write_text(out.stdout)
    applied = space.cluster.kubectl("apply", "--dry-run=server", "-f", str(files))
    assert applied.stdout.count("(server dry run)") == 3
