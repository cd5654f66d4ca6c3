"""The real node of the test cluster: kubelet + containerd (tests/cluster/node.sh) joined to a
control plane of its own (a state dir under the session's temp dir, TYCHO_REAL_NODE=1), so
pods really run, beside kwok nodes that only pretend.

``real_node`` (session) starts it, or reuses the cluster whose real node is already running
on this machine (there is one per machine), and stops what it started at the end. Needs root,
podman (the images are built by tests/images/_images.py and imported into containerd), and
kubelet + pause from tests/cluster/build.sh (built here when missing).

For a pipeline on the real node (the operator's stage Jobs): ``real_node.kubeconfig`` and
``real_node.s3`` (MinIO credentials, endpoint as pods reach it: ``real_node.s3_endpoint_for_pods``),
``real_node.load(image)``, and stage pods need ``real_node.placement`` (nodeSelector +
toleration) and ``imagePullPolicy: Never``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..images import _images

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "cluster"
NODE_DIR = Path("/var/lib/tycho-node")
K8S_VERSION = re.search(r"^TYCHO_K8S_VERSION=(\S+)", (SCRIPTS / "env.sh").read_text(), re.M)[1]  # type: ignore[index]
KUBECTL = _images.CACHE / "bin" / f"kubernetes-{K8S_VERSION}" / "kubectl"

pytestmark = pytest.mark.cluster


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@dataclasses.dataclass
class RealNode:
    state: Path
    env: dict[str, str]
    s3: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def name(self) -> str:
        return self.env["TYCHO_NODE_NAME"]

    @property
    def s3_endpoint_for_pods(self) -> str:
        return self.env["TYCHO_NODE_S3_ENDPOINT"]

    @property
    def placement(self) -> dict[str, Any]:
        """Pod spec fields that put a pod on the real node (and only there)."""
        key, _, value = self.env["TYCHO_NODE_SELECTOR"].partition("=")
        return {"nodeSelector": {key: value},
                "tolerations": [{"key": key, "operator": "Exists", "effect": "NoSchedule"}]}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                              capture_output=True, text=True, timeout=120, check=check)

    def load(self, *images: str) -> None:
        """Copy images from podman into the node's containerd (skipped when already there)."""
        self._script("load", *images)

    def _script(self, *args: str) -> None:
        env = dict(os.environ, TYCHO_CLUSTER_DIR=str(self.state), DOCKER="podman")
        proc = subprocess.run(["bash", str(SCRIPTS / "node.sh"), *args], env=env, capture_output=True,
                              text=True, timeout=1200)
        assert proc.returncode == 0, f"node.sh {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"

    def wait_pod(self, namespace: str, name: str, timeout: float = 180) -> dict[str, Any]:
        """The pod once it has Succeeded or Failed."""
        deadline = time.monotonic() + timeout
        while True:
            pod: dict[str, Any] = json.loads(self.kubectl("-n", namespace, "get", "pod", name, "-o", "json").stdout)
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                return pod
            if time.monotonic() > deadline:
                events = self.kubectl("-n", namespace, "get", "events", "--field-selector",
                                      f"involvedObject.name={name}", check=False).stdout
                raise AssertionError(f"pod {namespace}/{name} still {pod['status'].get('phase')} after "
                                     f"{timeout:g}s:\n{json.dumps(pod['status'], indent=1)}\n{events}")
            time.sleep(0.5)


def _running_owner() -> Path | None:
    """State dir of the cluster whose real node runs on this machine, if any."""
    owner = NODE_DIR / "owner"
    if not owner.is_file():
        return None
    state = Path(owner.read_text().strip())
    env = dict(os.environ, TYCHO_CLUSTER_DIR=str(state))
    ok = subprocess.run(["bash", str(SCRIPTS / "node.sh"), "status"], env=env, capture_output=True, timeout=60)
    return state if ok.returncode == 0 and (state / "node.env").is_file() else None


@pytest.fixture(scope="session")
def real_node() -> Iterator[RealNode]:
    why = _images.unavailable()
    if why:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("the real node needs root (kubelet, containerd)")
    state = _running_owner()
    started = None
    if state is None:
        subprocess.run(["bash", str(SCRIPTS / "build.sh"), "kubernetes", "etcd", "kwok", "minio", "kubelet", "pause"],
                       check=True, timeout=3600)
        tmp = Path(tempfile.mkdtemp(prefix="tycho-real-node-"))
        state = started = tmp / "cluster"
        env = dict(os.environ, TYCHO_CLUSTER_DIR=str(state), TYCHO_REAL_NODE="1", TYCHO_KWOK_AUTOCOMPLETE="0")
        proc = subprocess.run(["bash", str(SCRIPTS / "up.sh")], env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            subprocess.run(["bash", str(SCRIPTS / "down.sh")], env=env, capture_output=True, timeout=300)
            pytest.fail(f"up.sh with TYCHO_REAL_NODE=1 failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    node = RealNode(state, read_env(state / "node.env"), read_env(state / "s3.env"))
    try:
        yield node
    finally:
        if started is not None:
            env = dict(os.environ, TYCHO_CLUSTER_DIR=str(started))
            subprocess.run(["bash", str(SCRIPTS / "down.sh")], env=env, capture_output=True, timeout=300)
            shutil.rmtree(started.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def node_images(real_node: RealNode) -> dict[str, str]:
    """The stage-cpu image built (tests/images) and imported into the node: target -> image ID."""
    ids = _images.ensure_built(("stage-cpu",))
    real_node.load(_images.ref("stage-cpu"))
    return ids
