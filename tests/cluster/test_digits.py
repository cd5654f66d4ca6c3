"""The reference pipeline (digits, TensorFlow) on the cluster, its train stage on the GPU
node: every stage's Job really runs (locally, from its Job spec) against MinIO. Slow
(about two minutes of training on a laptop CPU): marked e2e as well as cluster."""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.space import Space
from tests.support.cluster import REPO, SECRET

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]
SMALL = {"train": {"epochs": 4}, "tune": {"epochs": 4}, "release": {"threshold": 0.5}}


def test_digits_runs_on_the_cluster_with_train_on_the_gpu_node(space: Space) -> None:
    pytest.importorskip("tensorflow")
    doc = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    doc["metadata"] = {"name": "digits", "namespace": space.ns}
    doc["spec"]["storage"] = {"url": space.store, "secretRef": {"name": SECRET}}
    doc["spec"]["code"] = {"workdir": "/app/pipeline"}
    for stage in doc["spec"]["stages"]:
        stage.setdefault("params", {}).update(SMALL.get(stage["name"], {}))
        if stage["name"] == "train":
            stage["resources"]["gpu"] = {"count": 1, "type": "NVIDIA-A10"}
        if stage["name"] == "tune":
            stage["sweep"].update(trials=2, parallelism=2)
    space.code_dir = REPO / "pipelines" / "digits"
    space.apply(doc)
    status = space.drive("digits", timeout=900)
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["progress"] == "7/7" and status["headline"].startswith("test_accuracy=")
    (train,) = space.jobs("train")
    (pod,) = space.kube.pods(space.ns, f"batch.kubernetes.io/controller-uid={train['metadata']['uid']}")
    assert pod["spec"]["nodeName"] == "gpu-1"
    evaluate = space.stage("evaluate", "digits")
    assert evaluate["metrics"]["test_accuracy"] > 0.5
    release = space.stage("release", "digits")
    record = space.store_json(release["provenance"])
    assert record["predicate"]["runDetails"]["metadata"]["invocationId"] == space.jobs("release")[0]["metadata"]["uid"]
