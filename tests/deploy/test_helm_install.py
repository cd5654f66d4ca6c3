"""`helm install` into the real test control plane (tests/cluster/up.sh), then RBAC checks
for the installed ServiceAccounts: SubjectAccessReviews (what `kubectl auth can-i
--as=system:serviceaccount:...` sends), answered by the API server's RBAC authorizer.

The operator image is not pulled (kwok nodes run no containers): what is tested is that
the API server accepts every object (schemas, admission, RBAC escalation checks), that the
operator's ServiceAccount can do everything the operator does, and nothing more.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import free_port, wait_for

from . import _support as s

pytestmark = pytest.mark.cluster

KUBECTL = s.kubectl()


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    kubeconfig: Path
    pipeline_namespaces: list[str]
    other_namespace: str

    @property
    def operator_sa(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-tycho"

    @property
    def stage_sa(self) -> str:
        return f"{self.name}-tycho-stage"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return s.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], check=check, timeout=60)

    def helm(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return s.helm(*args, "--kubeconfig", str(self.kubeconfig), check=check, timeout=180)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        proc = self.kubectl("get", kind, name, *ns, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def can(self, who: str, verb: str, resource: str, namespace: str | None = None, subresource: str = "") -> bool:
        """Would the API server allow it? A SubjectAccessReview, answered by its RBAC
        authorizer, for the user and groups a ServiceAccount token carries."""
        name = ""
        if "/" in resource:
            resource, name = resource.split("/", 1)
        plural, _, group = resource.partition(".")
        sa_namespace = who.split(":")[2]
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": who, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}",
                                    "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": plural, "subresource": subresource,
                                   "name": name, "namespace": namespace or ""}}}
        review = self.authorization.create_subject_access_review(body)
        return bool(review.status.allowed)

    @functools.cached_property
    def authorization(self) -> Any:
        from kubernetes import client, config

        return client.AuthorizationV1Api(config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)))


def install(cluster: Any, tmp_path: Path, values: dict[str, Any], *, watched: int) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:5]
    rel = Release(name=f"dt{suffix}", namespace=f"tycho-dt{suffix}", kubeconfig=Path(cluster.kubeconfig),
                  pipeline_namespaces=[f"ml{i}-{suffix}" for i in range(watched)], other_namespace=f"other-{suffix}")
    namespaces = [rel.namespace, *rel.pipeline_namespaces, rel.other_namespace]
    values = json.loads(json.dumps(values).replace('["PIPELINE_NAMESPACES"]', json.dumps(rel.pipeline_namespaces)))
    path = s.values_file(values, tmp_path, rel.name)
    try:
        for ns in namespaces:
            rel.kubectl("create", "namespace", ns)
        # --take-ownership: the CRDs are cluster-wide and kept on uninstall (also applied by
        # the cluster tests), so an earlier release or kubectl may own them already.
        rel.helm("install", rel.name, s.CHART, "--namespace", rel.namespace, "--values", path,
                 "--take-ownership", "--wait=false")
        yield rel
    finally:
        rel.helm("uninstall", rel.name, "--namespace", rel.namespace, "--wait", check=False)
        for ns in namespaces:
            rel.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def cluster_wide(cluster: Any, tmp_path: Path) -> Iterator[Release]:
    values = {"extraPipelineNamespaces": ["PIPELINE_NAMESPACES"],
              "storage": {"defaultUrl": "s3://tycho/deploy-test",
                          "secret": {"create": True, "accessKeyId": "test", "secretAccessKey": "test-secret",
                                     "endpointUrl": "http://minio.invalid:9000"}}}
    yield from install(cluster, tmp_path, values, watched=1)


@pytest.fixture
def namespaced(cluster: Any, tmp_path: Path) -> Iterator[Release]:
    values = {"watchNamespaces": ["PIPELINE_NAMESPACES"], "storage": {"existingSecret": "team-store"},
              "peering": {"enabled": True}, "operator": {"replicas": 2}}
    yield from install(cluster, tmp_path, values, watched=2)


# What the operator does (tycho.kube.client, kopf), per namespace it serves.
NEEDED = [
    ("get", "experimentpipelines.tycho.dev", ""), ("list", "experimentpipelines.tycho.dev", ""),
    ("watch", "experimentpipelines.tycho.dev", ""),
    ("patch", "experimentpipelines.tycho.dev", "status"), ("update", "experimentpipelines.tycho.dev", "finalizers"),
    ("create", "jobs.batch", ""), ("get", "jobs.batch", ""), ("list", "jobs.batch", ""), ("watch", "jobs.batch", ""),
    ("delete", "jobs.batch", ""),
    ("get", "pods", ""), ("list", "pods", ""), ("watch", "pods", ""),
    ("create", "events", ""), ("patch", "events", ""),
]
NOT_NEEDED = [
    ("list", "secrets", ""), ("get", "secrets/some-other-secret", ""), ("create", "pods", ""),
    ("delete", "experimentpipelines.tycho.dev", ""), ("create", "experimentpipelines.tycho.dev", ""),
    ("update", "jobs.batch", ""), ("patch", "jobs.batch", ""), ("patch", "experimentpipelines.tycho.dev", ""),
    ("get", "configmaps", ""), ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("get", "pods", "log"), ("create", "pods", "exec"),
]


def test_cluster_wide_install_creates_the_objects_and_least_privilege_rbac(cluster_wide: Release) -> None:
    rel = cluster_wide
    ml = rel.pipeline_namespaces[0]
    crd = wait_for(lambda: (c := rel.get("crd", "experimentpipelines.tycho.dev")) and any(
        x["type"] == "Established" and x["status"] == "True" for x in c.get("status", {}).get("conditions", [])) and c,
        60, "the CRD to be established")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployment = rel.get("deployment", f"{rel.name}-tycho", rel.namespace)
    assert deployment and deployment["spec"]["replicas"] == 1
    assert rel.get("serviceaccount", f"{rel.name}-tycho", rel.namespace)
    for ns in (rel.namespace, ml):
        stage_sa = rel.get("serviceaccount", rel.stage_sa, ns)
        assert stage_sa and stage_sa["automountServiceAccountToken"] is False
        assert rel.get("secret", f"{rel.name}-tycho-storage", ns)
    assert rel.get("clusterrole", f"{rel.name}-tycho") and rel.get("clusterrolebinding", f"{rel.name}-tycho")
    # The pod template passes admission: the ReplicaSet controller creates the pod.
    wait_for(lambda: json.loads(rel.kubectl("get", "pods", "-n", rel.namespace, "-l",
                                            f"app.kubernetes.io/instance={rel.name}", "-o", "json").stdout)["items"],
             60, "the operator pod to be created")

    who = rel.operator_sa
    for verb, resource, sub in NEEDED:
        assert rel.can(who, verb, resource, ml, sub), f"operator cannot {verb} {resource} {sub} in {ml}"
        assert rel.can(who, verb, resource, rel.other_namespace, sub), "cluster-wide: every namespace"
    for verb in ("list", "watch"):
        assert rel.can(who, verb, "experimentpipelines.tycho.dev"), f"cluster-wide {verb}"
        assert rel.can(who, verb, "jobs.batch")
    assert rel.can(who, "get", f"secrets/{rel.name}-tycho-storage", ml)
    assert rel.can(who, "list", "customresourcedefinitions.apiextensions.k8s.io")
    for verb, resource, sub in NOT_NEEDED:
        assert not rel.can(who, verb, resource, ml, sub), f"operator may {verb} {resource} {sub}"
    # The same answers through impersonation, as an admin would check by hand.
    can_i = ["auth", "can-i", "-n", ml, f"--as={who}"]
    assert rel.kubectl(*can_i, "patch", "experimentpipelines.tycho.dev", "--subresource=status").stdout.strip() == "yes"
    assert rel.kubectl(*can_i, "list", "secrets", check=False).stdout.strip() == "no"
    # The stage ServiceAccount has no permissions at all.
    stage = f"system:serviceaccount:{ml}:{rel.stage_sa}"
    for verb, resource, sub in NEEDED[:6] + [("get", f"secrets/{rel.name}-tycho-storage", "")]:
        assert not rel.can(stage, verb, resource, ml, sub), f"stage SA may {verb} {resource}"


def test_uninstall_keeps_the_crd_and_removes_the_rest(cluster_wide: Release) -> None:
    rel = cluster_wide
    rel.helm("uninstall", rel.name, "--namespace", rel.namespace, "--wait")
    assert rel.get("crd", "experimentpipelines.tycho.dev"), "the CRD (and so every pipeline) survives"
    assert rel.get("deployment", f"{rel.name}-tycho", rel.namespace) is None
    assert rel.get("clusterrole", f"{rel.name}-tycho") is None
    assert not rel.can(rel.operator_sa, "list", "experimentpipelines.tycho.dev")


def test_namespaced_install_stays_inside_its_namespaces(namespaced: Release) -> None:
    rel = namespaced
    who = rel.operator_sa
    for ns in rel.pipeline_namespaces:
        assert rel.get("role", f"{rel.name}-tycho", ns) and rel.get("rolebinding", f"{rel.name}-tycho", ns)
        for verb, resource, sub in NEEDED:
            assert rel.can(who, verb, resource, ns, sub), f"operator cannot {verb} {resource} {sub} in {ns}"
        assert rel.can(who, "get", "secrets/team-store", ns)
        assert rel.can(who, "patch", "kopfpeerings.kopf.dev", ns)
        for verb, resource, sub in NOT_NEEDED:
            assert not rel.can(who, verb, resource, ns, sub), f"operator may {verb} {resource} {sub} in {ns}"
    for ns in (rel.other_namespace, "default"):
        for verb, resource, sub in NEEDED + [("get", "secrets/team-store", "")]:
            assert not rel.can(who, verb, resource, ns, sub), f"operator may {verb} {resource} {sub} in {ns}"
    for verb in ("list", "watch"):
        assert not rel.can(who, verb, "experimentpipelines.tycho.dev"), "no cluster-wide access"
        assert not rel.can(who, verb, "jobs.batch")
    assert not rel.can(who, "patch", "clusterkopfpeerings.kopf.dev")
    assert rel.can(who, "watch", "namespaces") and not rel.can(who, "delete", "namespaces")


def test_peering_objects_exist_for_the_operators_to_meet_at(namespaced: Release) -> None:
    rel = namespaced
    for ns in rel.pipeline_namespaces:
        peering = wait_for(functools.partial(rel.get, "kopfpeerings.kopf.dev", "tycho", ns), 30,
                           f"KopfPeering in {ns}")
        assert peering["metadata"]["name"] == "tycho"
    assert rel.get("kopfpeerings.kopf.dev", "tycho", rel.other_namespace) is None
    deployment = rel.get("deployment", f"{rel.name}-tycho", rel.namespace)
    assert deployment is not None
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TYCHO_PEERING"] == "tycho" and env["TYCHO_NAMESPACES"] == ",".join(rel.pipeline_namespaces)
    assert deployment["spec"]["replicas"] == 2


# ---- the real operator, with nothing but the chart's permissions --------------------------------

def _s3_env(cluster: Any) -> dict[str, str]:
    env = getattr(cluster, "s3", None)
    if env:
        return dict(env)
    path = Path(cluster.kubeconfig).parent / "s3.env"
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture
def namespaced_with_store(cluster: Any, tmp_path: Path) -> Iterator[Release]:
    s3 = _s3_env(cluster)
    values = {"watchNamespaces": ["PIPELINE_NAMESPACES"],
              "storage": {"secret": {"create": True, "accessKeyId": s3["AWS_ACCESS_KEY_ID"],
                                     "secretAccessKey": s3["AWS_SECRET_ACCESS_KEY"],
                                     "endpointUrl": s3["AWS_ENDPOINT_URL"]}}}
    yield from install(cluster, tmp_path, values, watched=1)


def test_the_operator_runs_with_only_the_charts_permissions(namespaced_with_store: Release, cluster: Any,
                                                            tmp_path: Path) -> None:
    """`tycho operator` authenticated as the chart's ServiceAccount (a token of it), with the
    Deployment's TYCHO_* environment: it picks up a pipeline, creates its first Job and
    publishes status, and the API server never answers 403."""
    rel = namespaced_with_store
    ns = rel.pipeline_namespaces[0]
    sa = f"{rel.name}-tycho"
    token = rel.kubectl("create", "token", sa, "-n", rel.namespace, "--duration=10m").stdout.strip()
    admin = json.loads(rel.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": admin["clusters"][0]["name"], "user": sa,
                                                      "namespace": rel.namespace}}],
        "current-context": "operator"}))
    deployment = rel.get("deployment", sa, rel.namespace)
    assert deployment is not None
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    assert env["TYCHO_NAMESPACES"] == ns and env["TYCHO_STORE_SECRET"] == f"{rel.name}-tycho-storage"
    health = free_port()
    env.update(TYCHO_HEALTH_PORT=str(health), TYCHO_METRICS_PORT=str(free_port()))
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TYCHO_", "KUBE"))}
    proc_env.update(env, **_s3_env(cluster), KUBECONFIG=str(kubeconfig))
    tycho = Path(os.environ.get("VIRTUAL_ENV", s.REPO / ".venv")) / "bin" / "tycho"
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        operator = subprocess.Popen([str(tycho), "operator", "--verbose"], env=proc_env, stdout=out,
                                    stderr=subprocess.STDOUT)
    try:
        pipeline = {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline",
                    "metadata": {"name": "rbac-check", "namespace": ns},
                    "spec": {"storage": {"url": f"s3://tycho/{ns}"}, "stages": [
                        {"name": "generate", "image": "tycho/stage-cpu:test", "command": ["python", "generate.py"],
                         "outputs": ["numbers"]}]}}
        rel.kubectl("apply", "-f", str(s.values_file(pipeline, tmp_path, "pipeline")))

        def progressed() -> Any:
            assert operator.poll() is None, log.read_text()[-3000:]
            jobs = json.loads(rel.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout)["items"]
            status = (rel.get("experimentpipelines.tycho.dev", "rbac-check", ns) or {}).get("status", {})
            return jobs and status.get("phase") in ("Pending", "Running") and (jobs, status)

        jobs, status = wait_for(progressed, 60, "the operator to create a Job and publish status")
        pod_spec = jobs[0]["spec"]["template"]["spec"]
        assert pod_spec["serviceAccountName"] == rel.stage_sa
        env_names = {e["name"]: e for e in pod_spec["containers"][0]["env"]}
        assert env_names["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == f"{rel.name}-tycho-storage"
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(timeout=10)
        rel.kubectl("delete", "experimentpipelines.tycho.dev", "rbac-check", "-n", ns, "--wait=false", check=False)
    text = log.read_text(errors="replace")
    forbidden = [line for line in text.splitlines() if "403" in line or "Forbidden" in line or "forbidden" in line]
    assert not forbidden, "\n".join(forbidden[:10])


def test_the_board_behind_oauth2_proxy_installs_with_a_policy_admitting_the_proxy_only(cluster: Any,
                                                                                       tmp_path: Path) -> None:
    """The API server accepts the board's Deployment (board + oauth2-proxy, probes with a Host
    header), Service and NetworkPolicy as the chart renders them (docs/install.md)."""
    values = {"storage": {"defaultUrl": "s3://tycho/deploy-test", "existingSecret": "team-store"},
              "board": {"enabled": True, "oauth2Proxy": {
                  "enabled": True, "host": "tycho.example.com", "existingSecret": "board-oauth",
                  "oidcIssuerUrl": "https://login.example.com/realms/ml", "emailDomains": ["example.com"]}}}
    for rel in install(cluster, tmp_path, values, watched=0):
        name = f"{rel.name}-tycho-board"
        deployment, service = rel.get("deployment", name, rel.namespace), rel.get("service", name, rel.namespace)
        policy = rel.get("networkpolicy", name, rel.namespace)
        assert deployment and service and policy
        pod = deployment["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == ["board", "oauth2-proxy"]
        probe = pod["containers"][0]["readinessProbe"]["httpGet"]
        assert probe["port"] == "proxy" and probe["httpHeaders"] == [{"name": "Host", "value": "tycho.example.com"}]
        assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["targetPort"] == "proxy"
        assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 4180}]}]
