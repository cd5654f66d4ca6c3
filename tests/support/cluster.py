"""The test control plane (tests/cluster/up.sh: etcd, kube-apiserver, controller-manager,
scheduler, kwok nodes, MinIO) as the suites see it: where its state lives, a client for
it, and starting it once for the whole session (every suite shares one cluster)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support import tools, waiting
from tycho.kube import client, naming

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("TYCHO_CLUSTER_DIR", REPO / ".cluster"))
SCRIPTS = REPO / "tests" / "cluster"
CRD = REPO / "charts" / "tycho" / "files" / "crd.yaml"
TOY = REPO / "tests" / "fixtures" / "toy"
VENV_BIN = Path(sys.executable).parent
TYCHO = str(VENV_BIN / "tycho")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
PIPELINES = "/apis/tycho.dev/v1alpha1/namespaces/{ns}/experimentpipelines"
SECRET = "tycho-store"
SIGNING_SECRET = "tycho-signing"


def live() -> bool:
    """Whether a test control plane answers at ``STATE``."""
    kubeconfig = STATE / "kubeconfig"
    if not kubeconfig.is_file():
        return False
    probe = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=20)
    return probe.returncode == 0


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


@dataclasses.dataclass
class Cluster:
    kubeconfig: Path
    s3: dict[str, str]

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, check=check, input=input, timeout=60)

    def env(self) -> dict[str, str]:
        """Environment for processes talking to this cluster and its MinIO."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TYCHO_"))}
        env.update(self.s3)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


LEASE = STATE.parent / f"{STATE.name}.lease"
"""Who uses the test cluster now: the test processes (pytest, or each pytest-xdist worker)
that hold it, and whether one of them started it (then the last one out stops it)."""


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _lease(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, change and write the lease under its lock; holders that died are dropped."""
    with _locked(LEASE.with_suffix(".lock"), fcntl.LOCK_EX):
        try:
            lease: dict[str, Any] = json.loads(LEASE.read_text())
        except (OSError, ValueError):
            lease = {"holders": [], "started": False}
        lease["holders"] = [p for p in lease["holders"] if Path(f"/proc/{p}").exists()]
        change(lease)
        LEASE.write_text(json.dumps(lease))
        return lease


def _hold(lease: dict[str, Any]) -> None:
    if not lease["holders"] and not live():
        env = dict(os.environ, TYCHO_KWOK_AUTOCOMPLETE="0")
        subprocess.run(["bash", str(SCRIPTS / "build.sh")], check=True, env=env)
        subprocess.run(["bash", str(SCRIPTS / "up.sh")], check=True, env=env)
        lease["started"] = True
    elif not lease["holders"]:
        lease["started"] = False  # it was running before any test process needed it
    lease["holders"].append(os.getpid())


def _release(lease: dict[str, Any]) -> None:
    lease["holders"] = [p for p in lease["holders"] if p != os.getpid()]
    if not lease["holders"] and lease.pop("started", False):
        subprocess.run(["bash", str(SCRIPTS / "down.sh")], check=False)


@contextlib.contextmanager
def running() -> Iterator[Cluster]:
    """The test control plane, one for every test process of a session (pytest-xdist
    workers too): the live one, or one started now and stopped when the last process that
    holds it is done."""
    _lease(_hold)
    try:
        yield _ready()
    finally:
        _lease(_release)


def _ready() -> Cluster:
    auto = read_env_file(STATE / "cluster.env").get("TYCHO_KWOK_AUTOCOMPLETE", "0")
    if auto != "0":
        raise RuntimeError("the running cluster completes pods by itself (TYCHO_KWOK_AUTOCOMPLETE=1); "
                           "the tests need to control pods: run tests/cluster/down.sh first")
    c = Cluster(STATE / "kubeconfig", read_env_file(STATE / "s3.env"))
    install_api(c)
    # This test process reads MinIO (to upload inputs, to check records) and the API server
    # with the cluster's credentials; the stage runs it starts get only their Job's env.
    os.environ.update(c.s3, KUBECONFIG=str(c.kubeconfig))
    return c


def install_api(c: Cluster) -> None:
    """The CRD and the chart's admission policy (its manifest rules, no cluster policy), as
    ``helm install`` puts them: the API server refuses what ``tycho validate`` refuses."""
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/experimentpipelines.tycho.dev")
    policy = subprocess.run([str(tools.go_tool("helm")), "template", "tycho", str(REPO / "charts" / "tycho"),
                             "--kube-version", "1.34", "--show-only", "templates/admission-policy.yaml"],
                            capture_output=True, text=True, check=True, timeout=120).stdout
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=policy)

    def in_force() -> bool:  # a new policy takes a moment before the API server enforces it
        probe = c.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", check=False, input=REFUSED_PROBE)
        return "denied request" in probe.stderr

    waiting.wait_for(in_force, 60, "the admission policy to be enforced")


REFUSED_PROBE = """
apiVersion: tycho.dev/v1alpha1
kind: ExperimentPipeline
metadata: {name: probe}
spec: {stages: [{name: a, image: "img:1", command: [x], outputs: [a/b]}]}
"""
"""A pipeline only the admission policy refuses (an output name with '/')."""


class Kube(client.Kube):
    """The operator's own client plus what a test (or a kubelet) needs on top."""

    def pipelines(self, ns: str) -> str:
        return PIPELINES.format(ns=ns)

    def create_pipeline(self, doc: dict[str, Any]) -> dict[str, Any]:
        ns = doc["metadata"]["namespace"]
        created: dict[str, Any] = self._call("POST", self.pipelines(ns), body=doc)
        return created

    def patch_spec(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self._call("PATCH", f"{self.pipelines(ns)}/{name}", body={"spec": spec},
                   content_type="application/merge-patch+json")

    def delete_pipeline(self, ns: str, name: str) -> None:
        self._call("DELETE", f"{self.pipelines(ns)}/{name}")

    def jobs(self, ns: str) -> list[dict[str, Any]]:
        doc = self._call("GET", client.JOBS.format(ns=ns), query=[("labelSelector", naming.LABEL_PIPELINE)])
        items: list[dict[str, Any]] = doc["items"]
        return sorted(items, key=lambda j: j["metadata"]["creationTimestamp"])

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        doc = self._call("GET", client.PODS.format(ns=ns), query=[("labelSelector", selector)])
        items: list[dict[str, Any]] = doc["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def secret(self, ns: str, name: str) -> dict[str, str]:
        doc = self._call("GET", f"/api/v1/namespaces/{ns}/secrets/{name}")
        return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        doc = self._call("GET", f"/api/v1/namespaces/{ns}/events",
                         query=[("fieldSelector", f"involvedObject.name={name}")])
        items: list[dict[str, Any]] = doc["items"]
        return items

    def finish_pod(self, pod: dict[str, Any], *, ok: bool, exit_code: int | None = None, message: str = "",
                   image_id: str = "") -> None:
        """Play kubelet: the stage container terminated, the pod is Succeeded or Failed."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        code = (0 if ok else 1) if exit_code is None else exit_code
        terminated = {"exitCode": code, "reason": "Completed" if ok else "Error", "startedAt": now, "finishedAt": now}
        if message:
            terminated["message"] = message
        container = pod["spec"]["containers"][0]
        status = {"phase": "Succeeded" if ok else "Failed", "containerStatuses": [{
            "name": container["name"], "image": container["image"], "imageID": image_id, "ready": False,
            "restartCount": 0, "started": False, "state": {"terminated": terminated}}]}
        self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body={"status": status},
                   content_type="application/merge-patch+json")

    def finish_containers(self, pod: dict[str, Any],
                          results: list[tuple[dict[str, Any], subprocess.CompletedProcess[str]]],
                          image_id: str) -> None:
        """Play kubelet for a multi-container pod: each container that ran terminated with its
        exit code (the last lines of a failed one as its termination message, as
        FallbackToLogsOnError does); the pod failed if any did."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ran = {c["name"]: p for c, p in results}
        spec = pod["spec"]

        def status(container: dict[str, Any]) -> dict[str, Any]:
            proc = ran.get(container["name"])
            if proc is None:
                state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
            else:
                terminated: dict[str, Any] = {"exitCode": proc.returncode, "startedAt": now, "finishedAt": now,
                                              "reason": "Completed" if proc.returncode == 0 else "Error"}
                if proc.returncode:
                    terminated["message"] = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
                state = {"terminated": terminated}
            return {"name": container["name"], "image": container["image"], "imageID": image_id, "ready": False,
                    "restartCount": 0, "started": False, "state": state}

        ok = all(p.returncode == 0 for p in ran.values()) and len(ran) == len(spec.get("initContainers", [])) + len(
            spec["containers"])
        body = {"phase": "Succeeded" if ok else "Failed",
                "initContainerStatuses": [status(c) for c in spec.get("initContainers", [])],
                "containerStatuses": [status(c) for c in spec["containers"]]}
        self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body={"status": body},
                   content_type="application/merge-patch+json")
