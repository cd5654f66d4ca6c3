"""One reconcile step: which Jobs exist afterwards and what the status says, for every
situation a pipeline run goes through (fresh, running, done, hit, failed, suspended,
restarted operator)."""

from __future__ import annotations

from typing import Any

from tests.unit.kube import kubefakes as fk
from tycho.api import models, validation
from tycho.kube import jobs, naming, step

RUN = "toy-20250101-000000-abcd"


def _by_name(status: models.Status) -> dict[str, models.StageStatus]:
    return {s.name: s for s in status.stages}


def _run(pipeline: models.ExperimentPipeline, probe: fk.FakeProbe | None = None, **kw: Any) -> step.Outcome:
    return step.step(fk.world(pipeline, **kw), probe or fk.FakeProbe())


def _jobs(*manifests: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests}


def test_a_fresh_run_creates_one_job_for_the_first_stage_only() -> None:
    out = _run(fk.toy())
    assert [j["metadata"]["name"][:13] for j in out.create] == ["toy-generate-"]
    stages = _by_name(out.status)
    assert stages["generate"].phase == "Running" and stages["generate"].job_name == out.create[0]["metadata"]["name"]
    assert stages["total"].phase == "Pending" and stages["total"].message == "waits for generate"
    assert out.status.phase == "Running" and out.status.progress == "0/3" and out.status.run_id == RUN


def test_a_repeated_step_while_the_job_runs_creates_nothing() -> None:
    first = _run(fk.toy())
    running = fk.finish(first.create[0], "Running")
    again = _run(fk.toy(), prior=first.status, jobs=_jobs(running))
    assert again.create == [] and again.delete == []
    assert again.status == first.status


def test_an_operator_that_lost_its_status_adopts_the_existing_job() -> None:
    first = _run(fk.toy())
    running = fk.finish(first.create[0], "Running")
    restarted = _run(fk.toy(), prior=models.Status(run_id=RUN), jobs=_jobs(running))
    assert restarted.create == []
    assert _by_name(restarted.status)["generate"].phase == "Running"


def test_a_succeeded_job_publishes_its_outputs_and_starts_the_next_stage() -> None:
    first = _run(fk.toy())
    gen = first.create[0]
    key = gen["metadata"]["annotations"][naming.ANNOTATION_KEY]
    probe = fk.FakeProbe(produced={key: fk.entry(key, {"numbers": "1" * 64}, {"count": 5.0})},
                         pods={gen["metadata"]["name"]: [{"metadata": {"name": "p", "creationTimestamp": "t"},
                                                          "status": {"phase": "Succeeded", "containerStatuses": [
                                                              {"name": "stage", "imageID": "reg/x@sha256:" + "e" * 64}]}}]})
    out = _run(fk.toy(), probe, prior=first.status, jobs=_jobs(fk.finish(gen, "Succeeded")))
    stages = _by_name(out.status)
    done = stages["generate"]
    assert done.phase == "Succeeded" and done.cache_hit is False
    assert done.outputs == [models.OutputStatus(name="numbers", sha256="1" * 64,
                                                uri=f"{fk.STORE}/objects/sha256/{'1' * 64}")]
    assert done.provenance and done.metrics == {"count": 5.0}
    assert out.images["generate"].endswith("e" * 64)
    (total,) = out.create
    assert total["metadata"]["labels"][naming.LABEL_STAGE] == "total"
    inv = jobs.invocation_of(total)
    assert inv.inputs[0].sha256 == "1" * 64 and inv.inputs[0].producer == done.provenance
    assert out.status.progress == "1/3" and out.status.headline == "count=5"


def test_cache_hits_create_no_job_and_feed_the_next_stage_in_the_same_step() -> None:
    first = _run(fk.toy())
    key = first.create[0]["metadata"]["annotations"][naming.ANNOTATION_KEY]
    probe = fk.FakeProbe(hits={key: fk.entry(key, {"numbers": "1" * 64})})
    out = _run(fk.toy(), probe)
    stages = _by_name(out.status)
    assert stages["generate"].phase == "Cached" and stages["generate"].cache_hit is True
    assert stages["generate"].provenance == f"{fk.STORE}/records/r/{key[:6]}.json"
    assert [j["metadata"]["labels"][naming.LABEL_STAGE] for j in out.create] == ["total"]


def test_all_hits_finish_the_pipeline_without_any_job() -> None:
    hits: dict[str, Any] = {}
    pipeline = fk.toy()
    # Discover each stage's key by letting the previous one hit.
    for _ in range(3):
        out = _run(pipeline, fk.FakeProbe(hits=hits))
        for job in out.create:
            key = job["metadata"]["annotations"][naming.ANNOTATION_KEY]
            stage = job["metadata"]["labels"][naming.LABEL_STAGE]
            outs = {"generate": "numbers", "total": "total", "report": "report"}
            hits[key] = fk.entry(key, {outs[stage]: stage[0] * 64})
    out = _run(pipeline, fk.FakeProbe(hits=hits))
    assert out.create == []
    assert out.status.phase == "Succeeded" and out.status.progress == "3/3"
    ready = next(c for c in out.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert "3 cache hits" in out.status.message


def test_a_failed_job_fails_the_pipeline_naming_the_stage_and_the_reason() -> None:
    first = _run(fk.toy())
    gen = first.create[0]
    pod = {"metadata": {"name": "toy-generate-x-abc", "creationTimestamp": "t"},
           "status": {"phase": "Failed", "containerStatuses": [{"name": "stage", "state": {"terminated": {
               "exitCode": 1, "reason": "Error", "message": "[tycho] stage 'generate' failed: exit code 3"}}}]}}
    probe = fk.FakeProbe(pods={gen["metadata"]["name"]: [pod]})
    out = _run(fk.toy(), probe, prior=first.status, jobs=_jobs(fk.finish(gen, "Failed", failed=1)))
    stages = _by_name(out.status)
    assert stages["generate"].phase == "Failed"
    assert "BackoffLimitExceeded" in stages["generate"].message
    assert "exit code 1 (Error): [tycho] stage 'generate' failed: exit code 3" in stages["generate"].message
    assert stages["total"].phase == "Skipped" and stages["report"].phase == "Skipped"
    assert out.status.phase == "Failed" and out.status.message.startswith("stage generate failed: ")
    degraded = next(c for c in out.status.conditions if c.type == "Degraded")
    assert degraded.status == "True" and degraded.reason == "StageFailed"
    assert out.create == []


def test_a_job_that_succeeded_without_a_cache_entry_is_a_failure_that_says_so() -> None:
    first = _run(fk.toy())
    out = _run(fk.toy(), prior=first.status, jobs=_jobs(fk.finish(first.create[0], "Succeeded")))
    gen = _by_name(out.status)["generate"]
    assert gen.phase == "Failed" and "/cache/" in gen.message and "tycho stage-exec" in gen.message


def test_retries_show_as_attempts_of_a_running_stage() -> None:
    first = _run(fk.toy())
    retrying = fk.finish(first.create[0], "Running", failed=1)
    out = _run(fk.toy(), prior=first.status, jobs=_jobs(retrying))
    assert _by_name(out.status)["generate"].attempts == 2


def test_suspend_deletes_running_jobs_and_starts_nothing() -> None:
    first = _run(fk.toy())
    running = fk.finish(first.create[0], "Running")
    suspended = fk.toy(suspend=True)
    out = _run(suspended, prior=first.status, jobs=_jobs(running))
    assert out.delete == [running["metadata"]["name"]] and out.create == []
    assert _by_name(out.status)["generate"].phase == "Suspended"
    assert out.status.phase == "Suspended"
    # The Job is gone; still suspended: nothing happens.
    later = _run(suspended, prior=out.status)
    assert later.create == [] and later.status.phase == "Suspended"
    # Resumed: the same Job (same name) is created again.
    resumed = _run(fk.toy(), prior=later.status)
    assert [j["metadata"]["name"] for j in resumed.create] == [running["metadata"]["name"]]
    assert resumed.status.phase == "Running"


def test_finished_stages_stay_finished_across_suspend_and_resume() -> None:
    first = _run(fk.toy())
    gen = first.create[0]
    key = gen["metadata"]["annotations"][naming.ANNOTATION_KEY]
    probe = fk.FakeProbe(produced={key: fk.entry(key, {"numbers": "1" * 64})})
    second = _run(fk.toy(), probe, prior=first.status, jobs=_jobs(fk.finish(gen, "Succeeded")))
    total = second.create[0]
    suspended = _run(fk.toy(suspend=True), probe, prior=second.status,
                     jobs=_jobs(fk.finish(gen, "Succeeded"), fk.finish(total, "Running")))
    assert suspended.delete == [total["metadata"]["name"]]
    assert _by_name(suspended.status)["generate"].phase == "Succeeded"
    resumed = _run(fk.toy(), probe, prior=suspended.status, jobs=_jobs(fk.finish(gen, "Succeeded")))
    assert [j["metadata"]["name"] for j in resumed.create] == [total["metadata"]["name"]]
    assert probe.lookups == [total["metadata"]["annotations"][naming.ANNOTATION_KEY]] * 2


def test_max_parallel_limits_how_many_jobs_run_at_once() -> None:
    doc = fk.toy_doc(maxParallel=2)
    base = doc["spec"]["stages"][0]
    doc["spec"]["stages"] = [dict(base, name=f"s{i}") for i in range(4)]
    out = _run(validation.check(doc))
    assert len(out.create) == 2
    waiting = [s for s in out.status.stages if s.phase == "Pending"]
    assert len(waiting) == 2 and "maxParallel=2" in waiting[0].message


def test_a_failed_job_of_an_earlier_run_is_replaced() -> None:
    first = _run(fk.toy(), run_id="toy-old")
    old_failed = fk.finish(first.create[0], "Failed", failed=1)
    out = _run(fk.toy(), jobs=_jobs(old_failed))
    assert out.delete == [old_failed["metadata"]["name"]] and out.create == [] and out.waiting_for_deletion


def test_a_running_job_of_an_earlier_run_is_adopted_when_its_key_still_applies() -> None:
    first = _run(fk.toy(), run_id="toy-old")
    old = fk.finish(first.create[0], "Running")
    out = _run(fk.toy(), jobs=_jobs(old))
    assert out.create == [] and out.delete == []
    assert _by_name(out.status)["generate"].phase == "Running"


def test_a_running_job_for_a_key_this_run_no_longer_needs_is_deleted() -> None:
    first = _run(fk.toy())
    stale = fk.finish(first.create[0], "Running")
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["params"]["count"] = 6  # new spec: new key for generate
    out = _run(validation.check(doc), jobs=_jobs(stale))
    assert out.delete == [stale["metadata"]["name"]]
    assert len(out.create) == 1 and out.create[0]["metadata"]["name"] != stale["metadata"]["name"]


def test_a_job_being_deleted_blocks_its_name_until_it_is_gone() -> None:
    first = _run(fk.toy())
    going = fk.finish(first.create[0], "Running")
    going["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:05Z"
    out = _run(fk.toy(), jobs=_jobs(going))
    assert out.create == [] and out.waiting_for_deletion
