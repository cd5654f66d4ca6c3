"""cluster-conf/: the Argo CD app-of-apps, the ExperimentPipeline health check (run by a
real Lua 5.1 interpreter, the dialect Argo CD's gopher-lua speaks), the kind config,
and the reference pipeline against the CRD the chart installs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from lupa import lua51

from . import _support as s

CONF = s.REPO / "cluster-conf"
ARGOCD = CONF / "argocd"
LUA_FILE = ARGOCD / "health-experimentpipeline.lua"
CM_KEY = "resource.customizations.health.tycho.dev_ExperimentPipeline"


def applications() -> dict[str, dict[str, Any]]:
    docs = [ARGOCD / "root.yaml", *sorted((ARGOCD / "apps").glob("*.yaml"))]
    return {d["metadata"]["name"]: d for p in docs for d in yaml.safe_load_all(p.read_text()) if d}


# ---- Argo CD -------------------------------------------------------------------------------

def test_applications_are_valid_against_argo_cds_crd() -> None:
    apps = applications()
    assert set(apps) == {"tycho", "tycho-operator", "tycho-pipelines"}
    for app in apps.values():
        s.validate_custom(app, s.vendored_schemas())


def test_root_application_syncs_the_child_applications() -> None:
    apps = applications()
    root = apps["tycho"]["spec"]["source"]
    assert (s.REPO / root["path"]).resolve() == (ARGOCD / "apps").resolve()
    repos = {a["spec"]["source"]["repoURL"] for a in apps.values()}
    assert len(repos) == 1, "every Application points at the same repository"


def test_operator_application_deploys_the_chart_with_values_the_chart_accepts(tmp_path: Path) -> None:
    app = applications()["tycho-operator"]
    source = app["spec"]["source"]
    assert (s.REPO / source["path"]).resolve() == s.CHART.resolve()
    path = s.values_file(source["helm"]["valuesObject"], tmp_path, "argocd")
    proc = s.helm("lint", "--strict", s.CHART, "--values", path)
    assert "0 chart(s) failed" in proc.stdout
    objs = s.render(path, release=source["helm"]["releaseName"], namespace=app["spec"]["destination"]["namespace"])
    assert s.one(objs, "Deployment", "tycho")


def test_pipelines_application_syncs_pipelines_after_the_operator() -> None:
    apps = applications()
    pipelines, operator = apps["tycho-pipelines"], apps["tycho-operator"]
    source = pipelines["spec"]["source"]
    assert (s.REPO / source["path"]).resolve() == (s.REPO / "pipelines").resolve()
    synced = sorted((s.REPO / source["path"]).glob(source["directory"]["include"]))
    assert s.REPO / "pipelines" / "digits.yaml" in synced
    def wave(app: dict[str, Any]) -> int:
        return int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])

    assert wave(operator) < wave(pipelines)
    assert "SkipDryRunOnMissingResource=true" in pipelines["spec"]["syncPolicy"]["syncOptions"]


def test_argocd_cm_snippet_embeds_exactly_the_lua_file() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm-health.yaml").read_text())
    kubernetes_validate.validate(cm, s.KUBE_VERSION, strict=True)
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"][CM_KEY] == LUA_FILE.read_text(), (
        "argocd-cm-health.yaml differs from health-experimentpipeline.lua: paste the .lua file "
        "into the snippet, indented by four spaces")


# ---- the health check, run by Lua 5.1 --------------------------------------------------------

@pytest.fixture(scope="module")
def health() -> Any:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert runtime.eval("_VERSION") == "Lua 5.1"
    check = runtime.eval("function(obj)\n" + LUA_FILE.read_text() + "\nend")

    def run(obj: dict[str, Any]) -> tuple[str, str]:
        hs = check(runtime.table_from(obj, recursive=True))
        return hs["status"], hs["message"]

    return run


def xp(status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline",
                           "metadata": {"name": "digits", "namespace": "ml", "generation": generation},
                           "spec": {"stages": [{"name": "a", "image": "i", "command": ["x"]}]}}
    if status is not None:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def cond(ctype: str, status: str, message: str = "") -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": "Test", "message": message}


CASES = [
    ("no status yet", xp(), "Progressing", "Waiting for the Tycho operator"),
    ("status without phase", xp({"stages": []}), "Progressing", "Waiting"),
    ("Pending", xp({"phase": "Pending", "progress": "0/7"}), "Progressing", "Pending: 0/7"),
    ("Running", xp({"phase": "Running", "progress": "3/7", "headline": "val_accuracy=0.91",
                    "conditions": [cond("Progressing", "True"), cond("Degraded", "False")]}),
     "Progressing", "Running: 3/7, val_accuracy=0.91"),
    ("Running but Degraded", xp({"phase": "Running", "progress": "3/7",
                                 "conditions": [cond("Degraded", "True", "stage train failed; retrying")]}),
     "Degraded", "stage train failed; retrying"),
    ("Succeeded", xp({"phase": "Succeeded", "progress": "7/7", "headline": "test_accuracy=0.97",
                      "conditions": [cond("Ready", "True")]}), "Healthy", "Succeeded: test_accuracy=0.97, 7/7"),
    ("Failed", xp({"phase": "Failed", "progress": "4/7", "message": "stage tune failed: exit code 1",
                   "conditions": [cond("Degraded", "True", "stage tune failed")]}),
     "Degraded", "Failed: stage tune failed: exit code 1"),
    ("Failed, message only in condition", xp({"phase": "Failed", "conditions": [cond("Degraded", "True", "oom")]}),
     "Degraded", "Failed: oom"),
    ("Invalid", xp({"phase": "Invalid", "message": "stage b reads a/x, which no stage writes"}),
     "Degraded", "Invalid pipeline: stage b reads a/x"),
    ("Valid=False", xp({"phase": "Pending", "conditions": [cond("Valid", "False", "cycle a -> b -> a")]}),
     "Degraded", "cycle a -> b -> a"),
    ("Suspended", xp({"phase": "Suspended", "progress": "2/7"}), "Suspended", "Suspended: 2/7"),
    ("spec changed, not yet observed", xp({"phase": "Succeeded", "observedGeneration": 1}, generation=2),
     "Progressing", "generation 2"),
    ("unknown phase", xp({"phase": "Exploded"}), "Unknown", "Exploded"),
]


@pytest.mark.parametrize("obj,status,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_health_check_maps_each_phase(health: Any, obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = health(obj)
    assert got_status == status
    assert message in got_message


def test_health_check_covers_every_pipeline_phase(health: Any) -> None:
    from tycho.api import phases

    for phase in phases.PIPELINE_PHASES:
        status, _ = health(xp({"phase": phase}))
        assert status in {"Healthy", "Progressing", "Degraded", "Suspended"}, phase


# ---- kind and the reference pipeline ----------------------------------------------------------

def test_kind_config_has_a_labelled_and_tainted_gpu_worker() -> None:
    config = yaml.safe_load((CONF / "kind.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    gpu = [n for n in workers if n.get("labels", {}).get("tycho.dev/pool") == "gpu"]
    assert len(gpu) == 1 and any(n.get("labels", {}).get("tycho.dev/pool") == "cpu" for n in workers)
    join = yaml.safe_load(gpu[0]["kubeadmConfigPatches"][0])
    assert join["kind"] == "JoinConfiguration"
    taints = join["nodeRegistration"]["taints"]
    from tycho import settings

    assert taints == [{"key": settings.Settings().gpu_toleration_key, "value": "present", "effect": "NoSchedule"}]
    # The same shape as the test cluster's fake GPU node.
    test_nodes = {d["metadata"]["name"]: d for d in yaml.safe_load_all((s.CLUSTER_SCRIPTS / "nodes.yaml").read_text())}
    assert test_nodes["gpu-1"]["spec"]["taints"][0]["key"] == taints[0]["key"]
    assert test_nodes["gpu-1"]["metadata"]["labels"]["tycho.dev/pool"] == "gpu"


@pytest.mark.parametrize("manifest", sorted((s.REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_pipeline_manifests_are_valid_against_the_committed_crd(manifest: Path) -> None:
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "ExperimentPipeline":
            s.validate_custom(doc, s.tycho_schemas())


def test_the_crd_schema_rejects_what_the_api_server_would() -> None:
    doc = yaml.safe_load((s.REPO / "pipelines" / "digits.yaml").read_text())
    doc["spec"]["stages"][0]["retries"] = {"limit": 99}
    with pytest.raises(AssertionError, match="retries"):
        s.validate_custom(doc, s.tycho_schemas())
    doc = yaml.safe_load((s.REPO / "pipelines" / "digits.yaml").read_text())
    doc["spec"]["stages"][0]["imagePullPolicy"] = "Always"  # not a field: pruned/rejected
    with pytest.raises(AssertionError, match="imagePullPolicy"):
        s.validate_custom(doc, s.tycho_schemas())
