"""Reading Jobs and pods: phase, attempts, failure reasons and the image digest."""

from __future__ import annotations

from typing import Any

from tycho.kube import observe


def _job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j", "creationTimestamp": "c", "annotations": {"tycho.dev/run-id": "run-1"}},
            "status": status}


def test_job_phases_from_conditions_and_counts() -> None:
    assert observe.job_state(_job()).phase == "Running"
    assert observe.job_state(_job()).attempts == 1
    done = observe.job_state(_job(succeeded=1, failed=1, completionTime="f",
                                  conditions=[{"type": "Complete", "status": "True"}]))
    assert (done.phase, done.attempts, done.finished) == ("Succeeded", 2, "f")
    failed = observe.job_state(_job(failed=3, conditions=[
        {"type": "FailureTarget", "status": "True"},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit",
         "lastTransitionTime": "x"}]))
    assert (failed.phase, failed.attempts, failed.reason) == ("Failed", 3, "BackoffLimitExceeded")


def test_failure_message_names_the_condition_the_pod_and_the_exit() -> None:
    state = observe.JobState("Failed", 2, "s", "f", "DeadlineExceeded", "Job was active longer than specified deadline")
    pods: list[dict[str, Any]] = [
        {"metadata": {"name": "old", "creationTimestamp": "1"}, "status": {"phase": "Failed"}},
        {"metadata": {"name": "new", "creationTimestamp": "2"}, "status": {
            "phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than specified",
            "containerStatuses": [{"name": "stage", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}},
    ]
    msg = observe.failure_message(state, pods)
    assert msg.startswith("DeadlineExceeded: Job was active longer")
    assert "pod new: DeadlineExceeded" in msg and "last attempt: stage exit code 137 (Error)" in msg


def test_long_messages_keep_their_end() -> None:
    state = observe.JobState("Failed", 1, None, None, "BackoffLimitExceeded", "x")
    pods = [{"metadata": {"name": "p", "creationTimestamp": "1"}, "status": {"phase": "Failed", "containerStatuses": [
        {"name": "stage", "state": {"terminated": {"exitCode": 1, "message": "a" * 5000 + "THE END"}}}]}}]
    msg = observe.failure_message(state, pods)
    assert len(msg) <= observe.MESSAGE_CHARS + 1 and msg.endswith("THE END")


def test_image_digest_comes_from_the_pod_that_ran() -> None:
    pods = [{"metadata": {"creationTimestamp": "1"}, "status": {"phase": "Succeeded", "containerStatuses": [
        {"name": "stage", "imageID": "docker.io/tycho/stage@sha256:abc"}]}}]
    assert observe.image_digest(pods) == "docker.io/tycho/stage@sha256:abc"
    assert observe.image_digest([]) is None


def test_fingerprint_ignores_changes_the_operator_does_not_report() -> None:
    created = _job()
    steps = [_job(active=1, ready=0, startTime="s"), _job(active=1, ready=1, uncountedTerminatedPods={}),
             _job(succeeded=1, conditions=[{"type": "SuccessCriteriaMet", "status": "True"}])]
    # created, pod active, pod ready, success criteria met: nothing the engine decides on
    assert {observe.fingerprint(j) for j in [created, *steps]} == {observe.CREATED}
    complete = _job(succeeded=1, conditions=[{"type": "SuccessCriteriaMet", "status": "True"},
                                             {"type": "Complete", "status": "True"}])
    assert observe.fingerprint(complete) != observe.CREATED
    assert observe.fingerprint(_job(active=1, failed=1)) != observe.CREATED  # a retry: attempt 2
    assert observe.fingerprint({**created, "metadata": {**created["metadata"], "deletionTimestamp": "d"}}) \
        != observe.CREATED


def test_run_of_prefers_the_full_run_id_annotation() -> None:
    assert observe.run_of(_job()) == "run-1"
