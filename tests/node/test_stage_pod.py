"""A stage pod runs for real on the test cluster's real node: the stage image, imported into
containerd, runs `tycho stage-exec` as uid 10001 on a read-only root file system with the
restricted security context the operator gives stage pods; its log is served through the API
server; its output lands in a file:// store on the node (hostPath)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

from ..images import _images
from .conftest import RealNode

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]


def stage_pod(name: str, node: RealNode, store: Path, data: Path, invocation_json: str) -> dict[str, object]:
    container = {
        "name": "stage", "image": _images.ref("stage-cpu"), "imagePullPolicy": "Never",
        "env": [{"name": "TYCHO_INVOCATION", "value": invocation_json}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "store", "mountPath": "/store"},
                         {"name": "data", "mountPath": "/in/data.txt", "readOnly": True}],
    }
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False, **node.placement,
            "securityContext": {"runAsNonRoot": True, "runAsUser": _images.UID, "runAsGroup": _images.UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}},
                        {"name": "store", "hostPath": {"path": str(store), "type": "Directory"}},
                        {"name": "data", "hostPath": {"path": str(data), "type": "File"}}],
        },
    }


def test_a_stage_pod_completes_on_the_real_node_as_uid_10001_on_a_read_only_root(
        real_node: RealNode, node_images: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    os.chown(store, _images.UID, _images.UID)
    tmp_path.chmod(0o755)  # kubelet checks the hostPath from the host
    data = tmp_path / "data.txt"
    data.write_bytes(b"42\n")
    inv = _images.stage_invocation("file:///store", "file:///in/data.txt", hashlib.sha256(b"42\n").hexdigest())
    name = f"stage-{uuid.uuid4().hex[:8]}"
    real_node.kubectl("apply", "-f", "-", input=json.dumps(stage_pod(name, real_node, store, data,
                                                                     inv.model_dump_json())))
    try:
        pod = real_node.wait_pod("default", name)
        logs = real_node.kubectl("-n", "default", "logs", name, check=False)
        assert pod["status"]["phase"] == "Succeeded", json.dumps(pod["status"], indent=1) + logs.stdout + logs.stderr
        assert pod["spec"]["nodeName"] == real_node.name
        # The log comes from the container through kubelet: the stage's own line and the wrapper's result.
        assert "stage done" in logs.stdout and "[tycho] result " in logs.stdout
        state = pod["status"]["containerStatuses"][0]
        assert state["state"]["terminated"]["exitCode"] == 0
        # The image the node ran is the one podman built, by ID (the config digest).
        assert state["imageID"].removeprefix("docker.io/") == node_images["stage-cpu"]

        digest = hashlib.sha256(_images.STAGE_OUTPUT).hexdigest()
        stored = {hashlib.sha256(p.read_bytes()).hexdigest() for p in store.rglob("*") if p.is_file()}
        assert digest in stored, "the output (uid 10001, read-only root) is not in the store"
    finally:
        real_node.kubectl("-n", "default", "delete", "pod", name, "--wait=false", check=False)
