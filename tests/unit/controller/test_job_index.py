"""The caches keep, of each stage Job and pipeline, exactly what a reconcile reads of it;
kopf builds no diff base the operator would never read."""

from __future__ import annotations

import json
from typing import Any, cast

import kopf

from tests.unit.kube import kubefakes as fk
from tycho.controller import handlers
from tycho.kube import jobs, naming, observe
from tycho.settings import Settings


def _finished_job() -> dict[str, Any]:
    job = jobs.build_job(pipeline=fk.toy(), start=fk.start(fk.toy(), "report", "c" * 64), settings=Settings())
    job["metadata"].update(uid="job-uid", creationTimestamp="2026-01-01T00:00:00Z", managedFields=[{"big": "x" * 500}])
    job["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = "job-uid"
    job["status"] = {
        "active": 0, "succeeded": 1, "ready": 0, "terminating": 0, "startTime": "2026-01-01T00:00:01Z",
        "completionTime": "2026-01-01T00:01:00Z", "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "m",
             "lastProbeTime": "2026-01-01T00:01:00Z", "lastTransitionTime": "2026-01-01T00:01:00Z"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached",
             "lastProbeTime": "2026-01-01T00:01:00Z", "lastTransitionTime": "2026-01-01T00:01:00Z"}]}
    return job


def test_the_index_entry_reads_as_the_job_does_and_is_a_fraction_of_it() -> None:
    job = _finished_job()
    entry = observe.essentials(job)
    assert observe.job_state(entry) == observe.job_state(job)
    assert observe.fingerprint(entry) == observe.fingerprint(job)
    assert observe.run_of(entry) == observe.run_of(job) and naming.owned_by(entry, "uid-1")
    assert entry["metadata"]["labels"][naming.LABEL_STAGE] == "report"
    assert entry["metadata"]["annotations"][naming.ANNOTATION_KEY] == "c" * 64
    assert entry["spec"]["template"]["spec"]["containers"][0]["image"] == fk.toy().spec.stages[-1].image
    assert "batch.kubernetes.io/controller-uid" not in entry["metadata"]["labels"]
    assert len(json.dumps(entry)) * 5 < len(json.dumps(job))
    assert observe.essentials(entry) == entry  # what the cache holds reads as the Job, again


def test_a_failed_job_keeps_the_reason_its_status_reports() -> None:
    job = _finished_job()
    job["status"] = {"failed": 2, "startTime": "s", "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the "
         "specified backoff limit", "lastTransitionTime": "f"}]}
    entry = observe.essentials(job)
    assert observe.job_state(entry) == observe.job_state(job)
    assert observe.job_state(entry).reason == "BackoffLimitExceeded"


def test_the_pipeline_index_drops_what_kubectl_apply_leaves_but_keeps_tychos_annotations() -> None:
    body = {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline", "spec": {"stages": []},
            "metadata": {"name": "p", "namespace": "ns1", "uid": "u", "generation": 2, "managedFields": [{"x": 1}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}" * 100,
                                         naming.ANNOTATION_REPRODUCES: "run-1"}}}
    entry = handlers.index_entry(body)
    assert entry["spec"] == {"stages": []} and entry["metadata"]["generation"] == 2
    assert entry["metadata"]["annotations"] == {naming.ANNOTATION_REPRODUCES: "run-1"}
    assert "managedFields" not in entry["metadata"]


def test_kopf_builds_no_diff_base_and_no_handler_would_need_one() -> None:
    storage = handlers.NoDiffBase()
    job = cast(kopf.Body, _finished_job())
    assert storage.build(body=job) == {} and storage.fetch(body=job) is None
    # A diff base is what on.create/on.update/on.resume/on.delete/on.field handlers diff against:
    # adding one of those needs kopf's default storage back (and a finalizer, see handlers).
    assert not kopf.get_default_registry()._changing.get_all_handlers()
