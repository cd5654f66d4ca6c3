"""A sweep on the test control plane: trials are Jobs, at most `parallelism` at once; the
status shows the sweep's progress and trials; an operator killed mid-sweep starts no
trial twice."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.cluster.space import Space
from tests.support.waiting import wait_for
from tycho.kube import naming

pytestmark = pytest.mark.cluster


def _trial_jobs(space: Space) -> list[dict[str, Any]]:
    return [j for j in space.jobs("score") if naming.ANNOTATION_TRIAL in j["metadata"].get("annotations", {})]


def _unfinished(jobs: list[dict[str, Any]]) -> int:
    return sum(1 for j in jobs if not any(c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
                                          for c in (j.get("status") or {}).get("conditions") or []))


def test_a_sweep_runs_its_trials_as_jobs_at_most_parallelism_at_once(space: Space) -> None:
    doc = space.toy("sw", manifest="sweep.yaml")
    doc["spec"]["stages"][1]["sweep"].update(trials=12, parallelism=3)
    space.apply(doc)
    most = 0
    killed = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = space.status("sw")
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        jobs = _trial_jobs(space)
        most = max(most, _unfinished(jobs))
        if not killed and len(jobs) >= 6:  # mid-sweep: kill the operator, run a trial, restart it
            space.operator.kill(signal.SIGKILL)
            killed = True
        for job in space.jobs():
            if f"{job['metadata']['uid']}/1" not in space.executed:
                proc = space.execute(job)
                assert proc.returncode == 0, proc.stdout + proc.stderr
                break
        if killed and space.operator.proc is None:
            space.operator.start()
        time.sleep(0.2)
    status = space.wait_phase("Succeeded", name="sw", timeout=30)
    assert killed and most <= 3
    jobs = _trial_jobs(space)
    names = [j["metadata"]["name"] for j in jobs]
    assert len(names) == len(set(names)) == 12  # one Job per trial, none started twice
    score = next(s for s in status["stages"] if s["name"] == "score")
    sweep = score["sweep"]
    assert sweep["trials"] == 12 and sweep["finished"] == 12 and sweep["best"] is not None
    assert len(sweep["items"]) == 12 and all(i["phase"] == "Succeeded" for i in sweep["items"])
    assert status["sweeps"] == "score 12/12"
    best = sweep["items"][sweep["best"]]
    assert best["objective"] == max(i["objective"] for i in sweep["items"])
    printed = space.cluster.kubectl("-n", space.ns, "get", "xp", "sw").stdout
    assert "score 12/12" in printed


def test_suspending_a_sweep_stops_its_trials_and_resuming_continues_from_the_recorded_ones(space: Space) -> None:
    doc = space.toy("sw2", manifest="sweep.yaml")
    doc["spec"]["stages"][1]["sweep"].update(trials=6, parallelism=2)
    space.apply(doc)
    space.execute(space.wait_job("generate"))
    first = wait_for(lambda: len(_trial_jobs(space)) >= 2 and _trial_jobs(space), 30, "the first trial Jobs")
    assert space.execute(first[0]).returncode == 0
    space.kube.patch_spec(space.ns, "sw2", {"suspend": True})
    space.wait_phase("Suspended", name="sw2")
    wait_for(lambda: _unfinished(_trial_jobs(space)) == 0, 30, "the running trial Job to be deleted")
    space.kube.patch_spec(space.ns, "sw2", {"suspend": False})
    status = space.drive("sw2", timeout=120)
    assert status["phase"] == "Succeeded"
    score = next(s for s in status["stages"] if s["name"] == "score")
    assert score["sweep"]["finished"] == 6
    assert space.ran.count("score") == 6  # every trial executed once: the one done before the suspension is kept
