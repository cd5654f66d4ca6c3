"""One cache across laptop and cluster: the digits pipeline (small settings), its stage
image pinned by digest and ``spec.code.digest`` set as ``images/build.sh --pin`` sets them,
run with the container executor (podman) against the test cluster's MinIO and applied on
the test control plane. Whichever runs first, the other finds its stages in the cache:
the container run's keys equal the operator's (tycho.engine.identity).

Slow (one cold digits run: TensorFlow training in the stage Jobs the tests play kubelet
for, about 2 minutes): marked e2e."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.cluster.space import Space
from tests.images import _images
from tests.support.cluster import REPO, SECRET, TYCHO
from tests.support.waiting import wait_for
from tycho.kube import naming
from tycho.provenance import code

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.images, pytest.mark.timeout(1800)]
SMALL = {"train": {"epochs": 2}, "tune": {"epochs": 2}, "release": {"threshold": 0.5}}


@pytest.fixture(scope="module")
def pinned_image() -> str:
    """The stage-cpu image as --pin names it: NAME@sha256:<manifest digest> (podman runs it by that)."""
    why = _images.unavailable()
    if why:
        pytest.skip(why)
    pytest.importorskip("tensorflow")
    _images.ensure_built(("stage-cpu",))
    digest = subprocess.run(["podman", "image", "inspect", "--format", "{{.Digest}}", _images.ref("stage-cpu")],
                            capture_output=True, text=True, check=True).stdout.strip()
    return f"localhost/tycho/stage-cpu@{digest}"


def digits(space: Space, image: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    doc["metadata"] = {"name": "digits", "namespace": space.ns}
    doc["spec"]["storage"] = {"url": space.store, "secretRef": {"name": SECRET}}
    doc["spec"]["code"] = {"digest": "sha256:" + code.digest(REPO / "pipelines" / "digits")}
    for stage in doc["spec"]["stages"]:
        stage["image"] = image
        stage.setdefault("params", {}).update(SMALL.get(stage["name"], {}))
        if stage["name"] == "tune":
            stage["sweep"].update(trials=2, parallelism=2)
    space.code_dir = REPO / "pipelines" / "digits"
    return doc


def container_run(space: Space, doc: dict[str, Any]) -> dict[str, Any]:
    """``tycho run --executor container`` of the manifest against the cluster's MinIO, signing
    with the cluster's key (the one key a team's runners share)."""
    path = space.tmp / "digits.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = space.cluster.env()
    env["TYCHO_SIGNING_KEY"] = str(space.operator.signing_key)
    proc = subprocess.run([TYCHO, "run", str(path), "--executor", "container", "--engine", "podman", "--json",
                           "--store", space.store], cwd=space.tmp, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_a_cluster_run_and_a_laptop_container_run_find_each_others_stages_in_the_cache(
        space: Space, pinned_image: str) -> None:
    """Both ways with one cold run: the cluster runs the pipeline, a laptop's container run
    finds all of it cached; the laptop then runs a changed gate (one stage executes there),
    and the cluster, given the same change, finds every stage cached, that one included."""
    doc = digits(space, pinned_image)
    space.apply(doc)
    status = space.drive("digits", timeout=1200)
    assert status["phase"] == "Succeeded", status.get("message")
    assert wait_for(lambda: all(s["phase"] == "Succeeded" for s in space.status("digits")["stages"]), 30,
                    "every stage executed on the cluster")
    laptop = container_run(space, doc)
    assert {n: s["cacheHit"] for n, s in laptop["stages"].items()} == {n: True for n in laptop["stages"]}
    assert {n: s["outputs"] for n, s in laptop["stages"].items()} == {
        s["name"]: {o["name"]: o["sha256"] for o in s["outputs"]} for s in space.status("digits")["stages"]}

    release = next(s for s in doc["spec"]["stages"] if s["name"] == "release")
    release["params"]["threshold"] = 0.4  # a new key for release only
    laptop = container_run(space, doc)
    assert {n for n, s in laptop["stages"].items() if not s["cacheHit"]} == {"release"}
    doc["metadata"]["name"] = "digits-again"
    space.apply(doc)
    status = space.wait_phase("Succeeded", "digits-again", timeout=120)
    assert [s["phase"] for s in status["stages"]] == ["Cached"] * 7, status["stages"]
    assert not [j for j in space.jobs() if j["metadata"]["labels"][naming.LABEL_PIPELINE] == "digits-again"]
    keys = {s["name"]: s["cacheKey"] for s in status["stages"]}
    assert keys == {n: s["cacheKey"] for n, s in laptop["stages"].items()}
