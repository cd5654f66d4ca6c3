"""The Helm chart (charts/tycho): lint, render, schema validity, settings, security, RBAC."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tycho import settings as settings_mod

from . import _support as s
from .conftest import SCENARIOS, Scenario

NAMESPACED_RESOURCES = {"experimentpipelines", "experimentpipelines/status", "experimentpipelines/finalizers", "jobs",
                        "pods", "events", "secrets", "kopfpeerings"}


# ---- lint and schema validity ----------------------------------------------------------------

def test_helm_lint_is_clean_in_strict_mode_for_every_scenario(tmp_path: Path) -> None:
    for name, values in SCENARIOS.items():
        path = s.values_file(values, tmp_path, name)
        proc = s.helm("lint", "--strict", s.CHART, "--values", path, "--kube-version", s.KUBE_VERSION)
        assert "0 chart(s) failed" in proc.stdout, proc.stdout
        assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_rendered_object_is_valid_against_its_kubernetes_schema(
        name: str, scenarios: dict[str, Scenario]) -> None:
    objects = scenarios[name].objects
    custom = {**s.vendored_schemas(), **s.tycho_schemas()}
    for crd in s.by_kind(objects, "CustomResourceDefinition"):  # kopf peering CRDs, as rendered
        custom.update(s.crd_schemas(crd))
    for obj in objects:
        if s.is_builtin(obj):
            kubernetes_validate.validate(obj, s.KUBE_VERSION, strict=True)
        else:
            s.validate_custom(obj, custom)


def test_kubeconform_accepts_every_rendered_object_with_offline_schemas(scenarios: dict[str, Scenario],
                                                                        tmp_path: Path) -> None:
    custom = {**s.vendored_schemas(), **s.tycho_schemas()}
    files, builtin = [], set()
    for sc in scenarios.values():
        for crd in s.by_kind(sc.objects, "CustomResourceDefinition"):
            custom.update(s.crd_schemas(crd))
        builtin |= {(o["apiVersion"], o["kind"]) for o in sc.objects if s.is_builtin(o)}
        path = tmp_path / f"{sc.name}.yaml"
        path.write_text(yaml.safe_dump_all(sc.objects, sort_keys=False))
        files.append(path)
    schema_dir = s.kubeconform_schema_dir(tmp_path / "schemas", custom, builtin)
    report = s.kubeconform(files, schema_dir)
    summary = report["summary"]
    problems = [r for r in report.get("resources", []) if r.get("status") != "statusValid"]
    assert report["returncode"] == 0 and summary["invalid"] == 0 and summary["errors"] == 0, problems
    assert summary["skipped"] == 0, problems
    assert summary["valid"] == sum(len(sc.objects) for sc in scenarios.values())


def test_kubeconform_rejects_an_invalid_object(tmp_path: Path) -> None:
    """The offline setup really validates: a typo'd field fails."""
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}}, "template": {
               "metadata": {"labels": {"a": "b"}},
               "spec": {"containers": [{"name": "c", "image": "i", "imagePort": 1}]}}}}
    xp = {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline", "metadata": {"name": "x"},
          "spec": {"stages": [{"name": "a", "image": "i", "command": ["x"], "retries": {"limit": "many"}}]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([bad, xp]))
    schema_dir = s.kubeconform_schema_dir(tmp_path / "schemas", s.tycho_schemas(), {("apps/v1", "Deployment")})
    report = s.kubeconform([path], schema_dir)
    assert report["summary"]["invalid"] == 2, report


def test_vendored_schemas_are_the_documented_upstream_files() -> None:
    readme = (s.SCHEMAS / "README.md").read_text()
    for path in s.SCHEMAS.glob("*.yaml"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{path.name}`" in readme and digest in readme, f"{path.name}: sha256 {digest} not in README.md"


# ---- values and settings -----------------------------------------------------------------------

def _undocumented_values(text: str) -> list[str]:
    """Leaf keys of values.yaml with no `# --` comment on themselves or on an enclosing key."""
    lines = text.splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    entries: list[tuple[str, int, bool]] = []  # (dotted key, indent, covered)
    path: list[str] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        indent = len(m[1])
        j, documented = i - 1, False
        while j >= 0 and lines[j].strip().startswith("#"):
            documented |= lines[j].strip().startswith("# --")
            j -= 1
        while stack and stack[-1][0] >= indent:
            stack.pop()
            path.pop()
        covered = documented or any(d for _, d in stack)
        path.append(m[2])
        stack.append((indent, documented))
        entries.append((".".join(path), indent, covered))
    leaves = [e for k, e in enumerate(entries)
              if k + 1 == len(entries) or entries[k + 1][1] <= e[1]]
    return [key for key, _, covered in leaves if not covered]


def test_every_value_is_documented_helm_docs_style() -> None:
    missing = _undocumented_values((s.CHART / "values.yaml").read_text())
    assert not missing, f"values without a `# --` comment: {missing}"
    assert _undocumented_values("a:\n  # -- doc\n  b: 1\n  c: 2\n") == ["a.c"]


def _settings_env_names() -> set[str]:
    """The environment variables Settings.from_env reads."""
    seen: set[str] = set()

    class Spy(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            seen.add(key)
            return default

    settings_mod.Settings.from_env(Spy())
    return seen


def _settings_from(deployment: dict[str, Any]) -> settings_mod.Settings:
    env = {name: e["value"] for name, e in s.container_env(deployment).items() if "value" in e}
    return settings_mod.Settings.from_env(env)


def test_the_deployment_sets_exactly_the_operator_settings(scenarios: dict[str, Scenario]) -> None:
    names = _settings_env_names()
    assert names and all(n.startswith("TYCHO_") for n in names)
    for sc in scenarios.values():
        operator = s.one(s.by_kind(sc.objects, "Deployment"), "Deployment", "tycho")
        tycho_env = {n for n in s.container_env(operator) if n.startswith("TYCHO_")}
        assert tycho_env == names, f"{sc.name}: chart sets {sorted(tycho_env)}, settings read {sorted(names)}"


def test_chart_values_map_one_to_one_onto_operator_settings(tmp_path: Path) -> None:
    values = {
        "watchNamespaces": ["team-a", "team-b"],
        "metrics": {"port": 9100},
        "health": {"port": 9101},
        "stage": {"serviceAccount": {"name": "stage-runner"}, "imagePullPolicy": "Always",
                  "gpu": {"resource": "amd.com/gpu", "tolerationKey": "amd.com/gpu"}, "jobTtlSeconds": 600},
        "storage": {"defaultUrl": "s3://bucket/prefix", "existingSecret": "store-creds"},
        "peering": {"enabled": True, "name": "tycho-ha"},
        "signing": {"existingSecret": "tycho-signing"},
        "policy": {"allowedRegistries": ["ghcr.io/acme/", "reg.local/"], "requireDigests": True,
                   "allowedSecrets": ["store-creds"], "allowedTolerationKeys": ["gpu"],
                   "allowedNodeSelectorKeys": ["pool"], "allowedNamespaces": ["team-a"]},
    }
    objs = s.render(s.values_file(values, tmp_path, "all"))
    got = _settings_from(s.one(objs, "Deployment", "tycho"))
    expected = settings_mod.Settings(
        namespaces=("team-a", "team-b"), metrics_port=9100, health_port=9101, stage_service_account="stage-runner",
        default_store="s3://bucket/prefix", store_secret="store-creds", stage_image_pull_policy="Always",
        gpu_resource="amd.com/gpu", gpu_toleration_key="amd.com/gpu", job_ttl_seconds=600, peering="tycho-ha",
        signing_secret="tycho-signing", allowed_registries=("ghcr.io/acme/", "reg.local/"), require_digests=True,
        allowed_secrets=("store-creds",), allowed_toleration_keys=("gpu",), allowed_node_selector_keys=("pool",),
        allowed_namespaces=("team-a",))
    assert got == expected
    # Every field was changed from its default above, so none can be left unmapped.
    defaults = settings_mod.Settings()
    unchanged = [name for name in type(expected).model_fields if getattr(expected, name) == getattr(defaults, name)]
    assert not unchanged, f"not exercised: {unchanged}"


def test_default_values_give_the_settings_defaults_except_chart_owned_names(scenarios: dict[str, Scenario]) -> None:
    got = _settings_from(s.one(scenarios["default"].objects, "Deployment", "tycho"))
    assert got == settings_mod.Settings(stage_service_account="tycho-stage")


def test_minio_quick_start_becomes_the_default_store(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["peering-monitoring-minio"].objects
    got = _settings_from(s.one(objs, "Deployment", "tycho"))
    assert got.default_store == "s3://tycho/store" and got.store_secret == "tycho-storage"
    secret = s.one(objs, "Secret", "tycho-storage")
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
    minio = s.one(objs, "Deployment", "tycho-minio")
    env = s.container_env(minio)
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "tycho-storage",
                                                                       "key": "AWS_SECRET_ACCESS_KEY"}
    assert s.one(objs, "Service", "tycho-minio")["spec"]["ports"][0]["port"] == 9000
    assert s.one(objs, "PersistentVolumeClaim", "tycho-minio")


def test_operator_reads_store_credentials_from_the_storage_secret(scenarios: dict[str, Scenario]) -> None:
    env = s.container_env(s.one(scenarios["cluster-wide"].objects, "Deployment", "tycho"))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "tycho-storage"
    default_env = s.container_env(s.one(scenarios["default"].objects, "Deployment", "tycho"))
    assert "AWS_ACCESS_KEY_ID" not in default_env  # no storage Secret configured: nothing to read


def test_storage_secret_and_stage_account_exist_in_every_pipeline_namespace(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["cluster-wide"].objects
    assert {o["metadata"]["namespace"] for o in s.by_kind(objs, "Secret")} == {"tycho-system", "ml"}
    stage_sas = [o for o in s.by_kind(objs, "ServiceAccount") if o["metadata"]["name"] == "tycho-stage"]
    assert {o["metadata"]["namespace"] for o in stage_sas} == {"tycho-system", "ml"}
    assert all(o["automountServiceAccountToken"] is False for o in stage_sas)
    namespaced = scenarios["namespaced"].objects
    stage_sas = [o for o in s.by_kind(namespaced, "ServiceAccount") if o["metadata"]["name"] == "tycho-stage"]
    assert {o["metadata"]["namespace"] for o in stage_sas} == {"ml-a", "ml-b"}
    assert not s.by_kind(namespaced, "Secret")  # existingSecret: the chart creates none


def test_stage_service_account_has_no_permissions(scenarios: dict[str, Scenario]) -> None:
    for sc in scenarios.values():
        for binding in s.by_kind(sc.objects, "RoleBinding") + s.by_kind(sc.objects, "ClusterRoleBinding"):
            assert all(subject["name"] != "tycho-stage" for subject in binding["subjects"]), sc.name


def test_crd_is_the_generated_file_and_is_kept_on_uninstall(scenarios: dict[str, Scenario], tmp_path: Path) -> None:
    generated = s.load_crd(s.CHART / "files" / "crd.yaml")
    rendered = s.one(scenarios["default"].objects, "CustomResourceDefinition", "experimentpipelines.tycho.dev")
    assert rendered["spec"] == generated["spec"]
    assert rendered["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    objs = s.render(s.values_file({"crd": {"install": False}}, tmp_path, "nocrd"))
    assert not s.by_kind(objs, "CustomResourceDefinition")
    objs = s.render(s.values_file({"crd": {"keep": False}}, tmp_path, "nokeep"))
    assert "annotations" not in s.one(objs, "CustomResourceDefinition")["metadata"]


def test_peering_renders_kopf_crds_peering_objects_and_a_standby_friendly_rollout(
        scenarios: dict[str, Scenario]) -> None:
    cw = scenarios["peering-monitoring-minio"].objects
    crds = {o["metadata"]["name"] for o in s.by_kind(cw, "CustomResourceDefinition")}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    peering = s.one(cw, "ClusterKopfPeering", "tycho")
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    deployment = s.one(cw, "Deployment", "tycho")
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    ns = scenarios["namespaced"].objects
    assert {o["metadata"]["namespace"] for o in s.by_kind(ns, "KopfPeering")} == {"ml-a", "ml-b"}
    assert not s.by_kind(ns, "ClusterKopfPeering")
    default = scenarios["default"].objects
    assert not any(o["apiVersion"].startswith("kopf.dev") for o in default)
    assert s.one(default, "Deployment", "tycho")["spec"]["strategy"]["type"] == "Recreate"


def test_two_replicas_without_peering_are_refused(tmp_path: Path) -> None:
    path = s.values_file({"operator": {"replicas": 2}}, tmp_path, "two")
    proc = s.helm("template", "t", s.CHART, "--values", path, check=False)
    assert proc.returncode != 0 and "peering.enabled" in proc.stderr


def test_service_monitor_selects_the_metrics_service(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["peering-monitoring-minio"].objects
    monitor = s.one(objs, "ServiceMonitor")
    service = s.one(objs, "Service", "tycho-metrics")
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    pod_labels = s.one(objs, "Deployment", "tycho")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())


def test_probes_and_ports_use_the_health_and_metrics_settings(scenarios: dict[str, Scenario]) -> None:
    container = s.one(scenarios["default"].objects, "Deployment", "tycho")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["args"] == ["operator"]
    assert container["resources"]["requests"] and container["resources"]["limits"]


# ---- pod security --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_pod_meets_the_restricted_pod_security_standard(name: str, scenarios: dict[str, Scenario]) -> None:
    for deployment in s.by_kind(scenarios[name].objects, "Deployment"):
        assert not s.restricted_violations(deployment["spec"]["template"]["spec"]), deployment["metadata"]["name"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_pod_runs_as_a_uid_and_gid_of_10000_or_more(name: str, scenarios: dict[str, Scenario]) -> None:
    """High IDs never collide with a node's own users (no shared files, no shared limits)."""
    for deployment in s.by_kind(scenarios[name].objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        contexts = [spec.get("securityContext", {})] + [c.get("securityContext", {}) for c in spec["containers"]]
        for ctx in contexts:
            for key in ("runAsUser", "runAsGroup", "fsGroup"):
                if key in ctx:
                    assert ctx[key] >= 10000, (deployment["metadata"]["name"], key, ctx[key])
        assert any("runAsUser" in ctx for ctx in contexts), deployment["metadata"]["name"]


def test_operator_container_runs_as_uid_10001_with_a_writable_tmp(scenarios: dict[str, Scenario]) -> None:
    spec = s.one(scenarios["default"].objects, "Deployment", "tycho")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 10001
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert "/tmp" in mounts


# ---- RBAC ------------------------------------------------------------------------------------

def _rules(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for o in s.by_kind(objs, kind) for r in o["rules"]]


def _grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> list[dict[str, Any]]:
    return [r for r in rules if group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]]


NEEDED = [("tycho.dev", "experimentpipelines", v) for v in ("get", "list", "watch")] + [
    ("tycho.dev", "experimentpipelines/status", "patch"), ("tycho.dev", "experimentpipelines/finalizers", "update")] + [
    ("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")] + [
    ("", "pods", v) for v in ("get", "list", "watch")] + [("", "events", "create"), ("", "events", "patch")]


def test_cluster_wide_rbac_grants_what_the_operator_needs(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["cluster-wide"].objects
    rules = _rules(objs, "ClusterRole")
    for need in NEEDED:
        assert _grants(rules, *need), need
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["tycho-storage"],
                             "verbs": ["get"]}]
    assert not s.by_kind(objs, "Role")
    assert _grants(rules, "apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert not _grants(rules, "", "namespaces", "list"), "a cluster-wide kopf does not observe namespaces"


def test_namespaced_rbac_grants_nothing_namespaced_cluster_wide(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["namespaced"].objects
    cluster_rules = _rules(objs, "ClusterRole")
    assert all(not (set(r["resources"]) & NAMESPACED_RESOURCES) for r in cluster_rules), cluster_rules
    # Only reads of cluster-scoped objects kopf observes.
    assert {res for r in cluster_rules for res in r["resources"]} == {"customresourcedefinitions", "namespaces"}
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in cluster_rules)
    roles = s.by_kind(objs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"ml-a", "ml-b"}
    bindings = s.by_kind(objs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"ml-a", "ml-b"}
    for role in roles:
        for need in NEEDED:
            assert _grants(role["rules"], *need), (role["metadata"]["namespace"], need)
        assert _grants(role["rules"], "kopf.dev", "kopfpeerings", "patch")
        secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
        assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["team-store"],
                            "verbs": ["get"]}]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_rule_uses_wildcards_or_escalating_verbs(name: str, scenarios: dict[str, Scenario]) -> None:
    objs = scenarios[name].objects
    for rule in _rules(objs, "ClusterRole") + _rules(objs, "Role"):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        if "secrets" in rule["resources"]:
            assert rule.get("resourceNames") and rule["verbs"] == ["get"], rule


def test_notes_say_how_to_apply_the_first_pipeline_and_watch_it(tmp_path: Path) -> None:
    # NOTES.txt is only rendered by install/upgrade, which need a cluster: render it as a
    # ConfigMap in a copy of the chart instead (same values, same helpers).
    chart = tmp_path / "chart"
    shutil.copytree(s.CHART, chart)
    (chart / "files" / "NOTES.txt").write_text((s.CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-as-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        "data:\n  notes: {{ tpl (.Files.Get \"files/NOTES.txt\") . | quote }}\n")
    path = s.values_file({"watchNamespaces": ["ml"], "minio": {"enabled": True, "rootPassword": "x"}}, tmp_path,
                         "notes")
    out = s.helm("template", "tycho", chart, "--namespace", "tycho-system", "--values", path,
                 "--show-only", "templates/notes-as-configmap.yaml").stdout
    notes = yaml.safe_load(out)["data"]["notes"]
    assert "kubectl -n ml apply -f pipelines/digits.yaml" in notes
    assert "kubectl -n ml get xp -w" in notes
    assert "records/<run-id>/<stage>.json" in notes
    assert "s3://tycho/store" in notes


def test_values_schema_rejects_typos_and_bad_values(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"watchNamespace": ["ml"]}, "watchNamespace"),
        ({"operator": {"image": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"metrics": {"port": 70000}}, "port")]
    for bad, complaint in cases:
        path = s.values_file(bad, tmp_path, "bad")
        proc = s.helm("template", "t", s.CHART, "--values", path, check=False)
        assert proc.returncode != 0 and complaint in proc.stderr, (bad, proc.stderr)
