"""Suspend and resume, deletion, and an operator killed mid-run: the pipeline's state lives in
the API server, so none of these loses a stage or duplicates a Job."""

from __future__ import annotations

import signal

import pytest

from tests.cluster.space import Space
from tests.support.waiting import stays, wait_for
from tycho.kube import naming

pytestmark = pytest.mark.cluster


def test_suspend_deletes_running_jobs_and_resume_continues_the_same_run(space: Space) -> None:
    space.apply(space.toy())
    assert space.execute(space.wait_job("generate")).returncode == 0
    total = space.wait_job("total")
    space.wait_pod(total)
    run_id = space.status()["runId"]
    space.kube.patch_spec(space.ns, "toy", {"suspend": True})
    space.wait_phase("Suspended")
    wait_for(lambda: not space.jobs("total"), 30, "the running Job to be deleted")
    status = wait_for(lambda: space.stage("total").get("phase") == "Suspended" and space.status(), 30,
                      "stage total to show Suspended once its Job is gone")
    stages = {s["name"]: s for s in status["stages"]}
    assert stages["generate"]["phase"] == "Succeeded" and stages["total"]["phase"] == "Suspended"
    # The deletion of the Job was an event the operator passed over: it creates nothing again.
    stays(lambda: not space.jobs("total") and space.status()["phase"] == "Suspended", 3,
          "a suspended pipeline without Jobs")
    space.kube.patch_spec(space.ns, "toy", {"suspend": False})
    again = space.wait_job("total")
    assert again["metadata"]["name"] == total["metadata"]["name"]  # same key, same name
    assert again["metadata"]["uid"] != total["metadata"]["uid"]
    status = space.drive()
    assert status["phase"] == "Succeeded" and status["runId"] == run_id
    assert len(space.jobs("generate")) == 1  # finished work is not redone
    assert space.ran == ["generate", "total", "report"]
    space.wait_events("PipelineSuspended", "PipelineResumed", "StageSuspended")


def test_deleting_a_pipeline_garbage_collects_its_jobs_even_with_the_operator_down(space: Space) -> None:
    space.apply(space.toy())
    job = space.wait_job("generate")
    space.wait_pod(job)
    assert not space.pipeline()["metadata"].get("finalizers")
    space.operator.kill()
    space.kube.delete_pipeline(space.ns, "toy")
    wait_for(lambda: space.kube.get_pipeline(space.ns, "toy") is None, 10, "the pipeline to be gone")
    wait_for(lambda: not space.jobs(), 60, "the garbage collector to delete the Jobs")
    sel = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"
    wait_for(lambda: not space.kube.pods(space.ns, sel), 60, "the pods to be deleted")


def test_an_operator_killed_mid_run_and_restarted_neither_duplicates_nor_loses_a_stage(space: Space) -> None:
    space.apply(space.toy())
    gen = space.wait_job("generate")
    space.operator.kill(signal.SIGKILL)  # right after it created a Job, before it saw it run
    assert space.execute(gen).returncode == 0  # the stage finishes while no operator runs
    space.operator.start()
    total = space.wait_job("total")
    space.wait_pod(total)
    space.operator.kill(signal.SIGKILL)
    space.operator.start()  # restart with a stage running: must adopt, not recreate
    space.operator.wait_passes(1)
    assert space.execute(total).returncode == 0
    status = space.drive()
    assert status["phase"] == "Succeeded" and status["progress"] == "3/3"
    names = [j["metadata"]["name"] for j in space.jobs()]
    assert len(names) == len(set(names)) == 3
    assert sorted(j["metadata"]["labels"][naming.LABEL_STAGE] for j in space.jobs()) == ["generate", "report", "total"]
    assert len({j["metadata"]["labels"][naming.LABEL_RUN] for j in space.jobs()}) == 1
