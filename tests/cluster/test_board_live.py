"""A cluster run's curves reach the board while its train stage runs: the stage pod's live
sidecar publishes the growing metrics file to MinIO (live/<run>/<stage>.metrics.jsonl) and
a real ``tycho board`` over the same store serves it, before the stage ends."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import pytest

from tests.board.conftest import get_json, serve
from tests.cluster.space import Space
from tests.support.cluster import SECRET
from tests.support.waiting import wait_for

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


def _train_curve(url: str, run_id: str) -> dict[str, Any] | None:
    try:
        doc = get_json(f"{url}/api/runs/{run_id}/series")
    except OSError:
        return None
    return next((c for c in doc["curves"] if c["stage"] == "train" and c["metric"] == "loss"), None)


def test_curves_of_a_running_cluster_stage_appear_on_the_board(space: Space) -> None:
    """The stage pod's live sidecar publishes the metrics file while the stage runs; the
    harness plays kubelet for the whole pod (fetch, the sidecar beside the stage, publish)."""
    space.apply(_pipeline(space))
    job = space.wait_job("train")
    run_id = str(wait_for(lambda: space.status("live").get("runId"), 30, "the run id in status"))
    env = dict(space.cluster.env(), TYCHO_INDEX_DIR=str(space.tmp / "index"))
    with serve(space.store, env, space.tmp / "board.log", space.tmp) as served:
        space.code_dir = CODE
        pod_run = concurrent.futures.ThreadPoolExecutor(max_workers=1).submit(space.execute, job)
        try:
            first = wait_for(lambda: (c := _train_curve(served.url, run_id)) and c["points"] >= 1 and c, 30,
                             "the first live points of train on the board")
            assert not pod_run.done(), "the stage ended before the board showed its curve"
            assert first["live"] is True and first["points"] < STEPS
            later = wait_for(lambda: (c := _train_curve(served.url, run_id)) and c["points"] > first["points"] and c,
                             25, "more live points (the sidecar republishes at least every 10 s)")
            assert not pod_run.done() and later["live"] is True
            page = get_json(f"{served.url}/api/runs/{run_id}")
            assert page["live"] is True and page["run"]["executor"] == "kubernetes"
            proc = pod_run.result(timeout=120)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            space.wait_phase("Succeeded", name="live", timeout=60)
            done = wait_for(lambda: (c := _train_curve(served.url, run_id)) and not c["live"] and c, 30,
                            "the recorded series once the stage finished")
            assert done["points"] == STEPS  # the full series, from the record's metrics.jsonl
        finally:
            pod_run.result(timeout=180)

