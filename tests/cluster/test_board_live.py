"""A cluster run's curves reach the board while its train stage runs: the stage wrapper in the
Job publishes the growing metrics file to MinIO (live/<run>/<stage>.metrics.jsonl) and a real
``tycho board`` over the same store serves it, before the stage ends."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.board.conftest import get_json, serve
from tests.cluster.conftest import SECRET, TYCHO, VENV_BIN, Space, wait_for

pytestmark = pytest.mark.cluster
CODE = Path(__file__).resolve().parents[1] / "fixtures" / "board" / "code"
STEPS, SECONDS = 16, 1.5


def _pipeline(space: Space) -> dict[str, Any]:
    return {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline",
            "metadata": {"name": "live", "namespace": space.ns},
            "spec": {"owner": "tests", "tags": ["live"], "storage": {"url": space.store, "secretRef": {"name": SECRET}},
                     "code": {"workdir": "/app/pipeline"},
                     "stages": [{"name": "train", "image": "tycho/stage-cpu:test", "command": ["python", "train.py"],
                                 "params": {"steps": STEPS, "seconds": SECONDS}, "outputs": ["model"]}]}}


def _start_stage(space: Space, job: dict[str, Any], pod: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """Play kubelet, but without waiting: the Job's own command and env, run here."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = space.container_env(job, pod)
    env.update(PATH=f"{VENV_BIN}:/usr/bin:/bin", TYCHO_CODE_DIR=str(CODE), HOME=str(space.tmp))
    cmd = [TYCHO if container["command"][0] == "tycho" else container["command"][0], *container["command"][1:]]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=str(CODE), stdout=out, stderr=subprocess.STDOUT)


def _train_curve(url: str, run_id: str) -> dict[str, Any] | None:
    try:
        doc = get_json(f"{url}/api/runs/{run_id}/series")
    except OSError:
        return None
    return next((c for c in doc["curves"] if c["stage"] == "train" and c["metric"] == "loss"), None)


def test_curves_of_a_running_cluster_stage_appear_on_the_board(space: Space) -> None:
    space.apply(_pipeline(space))
    job = space.wait_job("train")
    pod = space.wait_pod(job)
    run_id = str(wait_for(lambda: space.status("live").get("runId"), 30, "the run id in status"))
    env = dict(space.cluster.env(), TYCHO_INDEX_DIR=str(space.tmp / "index"))
    board = serve(space.store, env, space.tmp / "board.log", space.tmp)
    served = next(board)
    stage = _start_stage(space, job, pod, space.tmp / "stage.log")
    try:
        first = wait_for(lambda: (c := _train_curve(served.url, run_id)) and c["points"] >= 1 and c, 30,
                         "the first live points of train on the board")
        assert stage.poll() is None, "the stage ended before the board showed its curve"
        assert first["live"] is True and first["points"] < STEPS
        later = wait_for(lambda: (c := _train_curve(served.url, run_id)) and c["points"] > first["points"] and c,
                         25, "more live points (the wrapper republishes at least every 10 s)")
        assert stage.poll() is None and later["live"] is True
        page = get_json(f"{served.url}/api/runs/{run_id}")
        assert page["live"] is True and page["run"]["executor"] == "kubernetes"
        assert stage.wait(timeout=120) == 0, (space.tmp / "stage.log").read_text()[-3000:]
        space.kube.finish_pod(pod, ok=True, image_id=f"docker.io/tycho/stage-cpu@sha256:{'ab' * 32}")
        space.wait_phase("Succeeded", name="live", timeout=60)
        done = wait_for(lambda: (c := _train_curve(served.url, run_id)) and not c["live"] and c, 30,
                        "the recorded series once the stage finished")
        assert done["points"] == STEPS  # the full series, from the record's metrics.jsonl
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
        board.close()
