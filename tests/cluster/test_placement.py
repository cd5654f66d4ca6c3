"""GPU and CPU placement by the real kube-scheduler: a GPU stage lands on the tainted GPU
node with the requested product, CPU stages never do."""

from __future__ import annotations

import pytest

from tests.cluster.space import Space
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


def test_gpu_stage_is_bound_to_the_gpu_node_and_cpu_stages_to_cpu_nodes(space: Space) -> None:
    doc = space.toy()
    stages = {s["name"]: s for s in doc["spec"]["stages"]}
    stages["total"]["resources"] = {"cpu": 2, "memory": "1Gi", "gpu": {"count": 1, "type": "NVIDIA-A10"}}
    stages["generate"]["resources"] = {"cpu": "500m", "memory": "256Mi"}
    space.apply(doc)
    status = space.drive()
    assert status["phase"] == "Succeeded", status.get("message")
    nodes = {}
    for job in space.jobs():
        (pod,) = space.kube.pods(space.ns, f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
        nodes[job["metadata"]["labels"]["tycho.dev/stage"]] = pod["spec"]["nodeName"]
        if job["metadata"]["labels"]["tycho.dev/stage"] == "total":
            spec = pod["spec"]
            (stage,) = [c for c in spec["initContainers"] + spec["containers"] if c["name"] == "stage"]
            assert stage["resources"]["limits"]["nvidia.com/gpu"] == "1"
            assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert nodes["total"] == "gpu-1"
    assert nodes["generate"] in ("cpu-1", "cpu-2") and nodes["report"] in ("cpu-1", "cpu-2")


def test_a_gpu_type_no_node_has_stays_pending_instead_of_landing_elsewhere(space: Space) -> None:
    doc = space.toy()
    doc["spec"]["stages"][0]["resources"] = {"gpu": {"count": 1, "type": "NVIDIA-H100"}}
    space.apply(doc)
    job = space.wait_job("generate")
    sel = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"

    def unschedulable() -> bool:
        pods = space.kube.pods(space.ns, sel)
        return bool(pods) and any(c.get("reason") == "Unschedulable" for c in pods[0]["status"].get("conditions", []))

    wait_for(unschedulable, 30, "the scheduler to report the pod unschedulable")
    (pod,) = space.kube.pods(space.ns, sel)
    assert not pod["spec"].get("nodeName") and pod["status"]["phase"] == "Pending"
    assert space.stage("generate")["phase"] == "Running"  # the Job exists; its pod waits for a node
