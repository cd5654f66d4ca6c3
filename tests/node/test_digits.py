"""The reference pipeline on the real node: the operator (a process on this machine, as in
tests/cluster) runs the digits pipeline's stages as real pods on the test cluster's
kubelet + containerd node, in the stage image imported into containerd (imagePullPolicy
Never), against MinIO at the address pods reach. Then what a user checks: outputs and
status, the records (the image's SBOM named, the digest the node ran reported), `tycho
verify`, and `tycho reproduce` of that cluster run in podman containers on this machine,
bit for bit. GPU placement stays tested on the kwok GPU node (tests/cluster/test_digits.py).

Slow (the real node imports the 2.3 GB image once per image build, 60-95 s; the
pipeline's pods, then the reproduction, train TensorFlow on 2 cores): marked e2e."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.operator_process import Operator
from tests.support.cluster import CRD, SECRET, SIGNING_SECRET, TYCHO, Cluster
from tycho.provenance import layout, record, signing, store as store_mod

from ..images import _images
from .conftest import REPO, RealNode

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(2400)]
SMALL = {"train": {"epochs": 2}, "tune": {"epochs": 2}, "release": {"threshold": 0.5}}
# Three pods at once fit the node's 2 CPUs (each pod also asks 10m for its live-metrics sidecar).
RESOURCES = {"cpu": "650m", "memory": "2Gi"}


@pytest.fixture(scope="module")
def digits_run(real_node: RealNode, node_images: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pytest.importorskip("tensorflow")
    tmp = tmp_path_factory.mktemp("node-digits")
    cluster = Cluster(real_node.kubeconfig, real_node.s3)
    ns = f"digits-{uuid.uuid4().hex[:6]}"
    real_node.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    real_node.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/experimentpipelines.tycho.dev")
    real_node.kubectl("create", "namespace", ns)
    s3 = real_node.s3
    # The Secret pods read: MinIO at the node-reachable address.
    real_node.kubectl("-n", ns, "create", "secret", "generic", SECRET,
                      f"--from-literal=AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}",
                      f"--from-literal=AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}",
                      f"--from-literal=AWS_ENDPOINT_URL={real_node.s3_endpoint_for_pods}")
    operator = Operator(cluster, ns, tmp)
    key = signing.ensure_key(operator.signing_key)
    real_node.kubectl("-n", ns, "create", "secret", "generic", SIGNING_SECRET, f"--from-file=signing.key={key}")
    deadline = time.monotonic() + 30
    while real_node.kubectl("-n", ns, "get", "serviceaccount", "default", check=False).returncode != 0:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.5)
    operator.extra_env = {"TYCHO_STAGE_IMAGE_PULL_POLICY": "Never"}
    operator.start()
    store = f"s3://tycho/{ns}"
    doc: dict[str, Any] = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    doc["metadata"] = {"name": "digits", "namespace": ns}
    doc["spec"]["storage"] = {"url": store, "secretRef": {"name": SECRET}}
    placement = real_node.placement
    for stage in doc["spec"]["stages"]:
        stage["image"] = _images.ref("stage-cpu")
        stage["resources"] = dict(RESOURCES)
        stage["nodeSelector"] = placement["nodeSelector"]
        stage["tolerations"] = placement["tolerations"]
        stage.setdefault("params", {}).update(SMALL.get(stage["name"], {}))
        if stage["name"] == "tune":
            stage["sweep"].update(trials=2, parallelism=2)
    started = time.monotonic()
    real_node.kubectl("apply", "-f", "-", input=json.dumps(doc))
    # This test process reads MinIO (records, summaries) with the cluster's credentials.
    saved = {k: os.environ.get(k) for k in s3}
    os.environ.update(s3)
    try:
        status = _wait(real_node, ns, timeout=1800)
        yield {"ns": ns, "status": status, "store": store, "cluster": cluster, "operator": operator, "tmp": tmp,
               "seconds": time.monotonic() - started}
    finally:
        if operator.proc is not None and operator.proc.poll() is not None:
            print(operator.logs()[-5000:])
        operator.kill()
        real_node.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait(node: RealNode, ns: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = json.loads(node.kubectl("-n", ns, "get", "experimentpipeline", "digits", "-o", "json").stdout)
        status: dict[str, Any] = doc.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return status
        if time.monotonic() > deadline:
            pods = node.kubectl("-n", ns, "get", "pods", "-o", "wide", check=False).stdout
            raise AssertionError(f"digits did not finish in {timeout:g}s: {json.dumps(status)[:3000]}\n{pods}")
        time.sleep(2)


def _tycho(run: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = run["cluster"].env()
    env["TYCHO_SIGNING_KEY"] = str(run["operator"].signing_key)
    return subprocess.run([TYCHO, *args, "--store", run["store"]], cwd=run["tmp"], env=env, capture_output=True,
                          text=True, timeout=1500)


def _store_json(run: dict[str, Any], rel: str) -> Any:
    return store_mod.Store(run["store"]).read_json(layout.rel(rel))


def test_digits_runs_as_real_pods_on_the_real_node(digits_run: dict[str, Any], real_node: RealNode) -> None:
    status = digits_run["status"]
    print(f"digits on the real node: {digits_run['seconds']:.0f}s")
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert status["progress"] == "7/7" and all(s["phase"] == "Succeeded" for s in status["stages"])
    pods = json.loads(real_node.kubectl("-n", digits_run["ns"], "get", "pods", "-o", "json").stdout)["items"]
    assert len(pods) >= 8 and {p["spec"]["nodeName"] for p in pods} == {real_node.name}
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)


def test_records_name_the_image_sbom_and_the_summary_the_image_the_node_ran(
        digits_run: dict[str, Any], node_images: dict[str, str]) -> None:
    status = digits_run["status"]
    summary = _store_json(digits_run, f"runs/{status['runId']}.json")
    sbom = subprocess.run(["podman", "run", "--rm", "--entrypoint", "cat", _images.ref("stage-cpu"),
                           "/app/sbom.cdx.json"], capture_output=True, check=True).stdout
    records = [stage["record"] for stage in summary["stages"].values()]
    records += [trial["record"] for trial in summary["stages"]["tune"]["trials"]]
    for rel in records:
        assert record.image_sbom(_store_json(digits_run, rel)) == hashlib.sha256(sbom).hexdigest(), rel
    for name, stage in summary["stages"].items():
        if name != "tune":  # a sweep's stage result names the image as the manifest does
            assert stage["image"] == {"reference": _images.ref("stage-cpu"), "resolvedBy": "kubelet",
                                      "digest": node_images["stage-cpu"].removeprefix("sha256:")}, name


def test_verify_passes_on_the_cluster_run(digits_run: dict[str, Any]) -> None:
    proc = _tycho(digits_run, "verify", digits_run["status"]["runId"], "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["problems"] == [], report["problems"]


def test_reproduce_of_the_cluster_run_in_podman_is_bit_identical(digits_run: dict[str, Any]) -> None:
    proc = _tycho(digits_run, "reproduce", digits_run["status"]["runId"], "--json", "--executor", "container",
                  "--engine", "podman")
    result = json.loads(proc.stdout)
    differing = [f"{o['stage']}/{o['output']}" for o in result["outputs"] if not o["identical"]]
    assert differing == [] and proc.returncode == 0, (differing, result.get("problems"), proc.stderr[-3000:])

