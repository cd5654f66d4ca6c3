"""The operator's policy check names every violation with its field path."""

from __future__ import annotations

from tests.unit.kube import kubefakes as fk
from tycho.api import validation
from tycho.kube import policy
from tycho.settings import Settings


def test_no_policy_allows_everything() -> None:
    assert policy.check(fk.toy(), Settings()) == []


def test_each_rule_names_its_field() -> None:
    doc = fk.toy_doc()
    stage = doc["spec"]["stages"][0]
    stage["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    stage["nodeSelector"] = {"zone": "a"}
    stage["env"] = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]
    settings = Settings(allowed_registries=("ghcr.io/acme/",), require_digests=True, allowed_secrets=("store-creds",),
                        allowed_toleration_keys=("gpu",), allowed_node_selector_keys=("pool",),
                        allowed_namespaces=("team-a",))
    paths = {p.path for p in policy.check(validation.check(doc), settings)}
    assert {"metadata.namespace", "spec.stages[0].image", "spec.stages[0].env[0].valueFrom.secretKeyRef.name",
            "spec.stages[0].tolerations[0].key", "spec.stages[0].nodeSelector.zone"} <= paths
