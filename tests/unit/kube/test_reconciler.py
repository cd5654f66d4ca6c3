"""The reconcile loop against an in-memory API server and a local store: the glue between
reading the world, the step, and writing Jobs, status and the run summary."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.unit.kube import kubefakes as fk
from tycho.kube import naming, reconciler
from tycho.provenance import runs, store as store_mod
from tycho.settings import Settings


class FakeKube:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.jobs: dict[str, dict[str, Any]] = {}
        self.status_writes = 0
        self.deleted: list[str] = []

    def get_pipeline(self, ns: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.body)

    def replace_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.status_writes += 1
        self.body["status"] = copy.deepcopy(status)

    def list_jobs(self, ns: str, pipeline: str, uid: str) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.jobs)

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        name = manifest["metadata"]["name"]
        if name in self.jobs:
            return self.jobs[name], False
        self.jobs[name] = fk.finish(manifest, "Running")
        return self.jobs[name], True

    def delete_job(self, ns: str, name: str) -> None:
        self.deleted.append(name)
        self.jobs.pop(name, None)

    def job_pods(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def setup(tmp_path: Path) -> tuple[FakeKube, reconciler.Reconciler, store_mod.Store]:
    notes = tmp_path / "notes.txt"
    notes.write_text("hi\n")
    doc = fk.toy_doc()
    doc["apiVersion"], doc["kind"] = "tycho.dev/v1alpha1", "ExperimentPipeline"
    doc["spec"]["storage"] = {"url": f"file://{tmp_path}/store"}
    for stage in doc["spec"]["stages"]:
        for inp in stage.get("inputs", []):
            if inp.get("url"):
                inp["url"] = f"file://{notes}"
                inp.pop("sha256", None)  # unpinned: the operator hashes the data once per run
    kube = FakeKube(doc)
    rec = reconciler.Reconciler(Settings(), kube, allow_local_store=True)  # type: ignore[arg-type]
    return kube, rec, store_mod.Store(f"file://{tmp_path}/store")


def _publish(store: store_mod.Store, job: dict[str, Any], kube: FakeKube) -> None:
    """What the stage wrapper writes, minus running code: outputs and the cache entry."""
    key = job["metadata"]["annotations"][naming.ANNOTATION_KEY]
    stage = job["metadata"]["labels"][naming.LABEL_STAGE]
    out = {"generate": "numbers", "total": "total", "report": "report"}[stage]
    digest = store.put_bytes(f"{stage}\n".encode())
    store.write_json(f"cache/{key}.json", {"key": key, "record": store.uri(f"records/x/{stage}.json"),
                                           "outputs": {out: digest}, "metrics": {"n": 1.0}})
    kube.jobs[job["metadata"]["name"]] = fk.finish(job, "Succeeded")


def test_reconciling_drives_the_run_and_keeps_the_summary(setup: Any) -> None:
    kube, rec, store = setup
    result = rec.reconcile("ns1", "toy")
    assert [j["metadata"]["labels"][naming.LABEL_STAGE] for j in kube.jobs.values()] == ["generate"]
    run_id = kube.body["status"]["runId"]
    assert [e.reason for e in result.events] == ["RunStarted", "StageStarted"]
    writes = kube.status_writes
    assert rec.reconcile("ns1", "toy").events == [] and kube.status_writes == writes  # nothing new: no write
    for stage in ("generate", "total", "report"):
        job = next(j for j in kube.jobs.values() if j["metadata"]["labels"][naming.LABEL_STAGE] == stage)
        _publish(store, job, kube)
        rec.reconcile("ns1", "toy")
    status = kube.body["status"]
    assert status["phase"] == "Succeeded" and status["runId"] == run_id and status["progress"] == "3/3"
    summary = runs.load(store, run_id)
    assert summary["phase"] == "Succeeded"
    assert [e["phase"] for e in summary["stages"].values()] == ["Succeeded"] * 3
    assert summary["stages"]["report"]["keyComponents"]["inputs"]["notes"]  # digest of the external file


def test_an_invalid_manifest_gets_status_invalid_and_no_job(setup: Any) -> None:
    kube, rec, _ = setup
    kube.body["spec"]["stages"][1]["inputs"][0]["from"] = "nope/numbers"
    result = rec.reconcile("ns1", "toy")
    assert kube.jobs == {}
    assert kube.body["status"]["phase"] == "Invalid"
    assert "spec.stages[1].inputs[0].from" in kube.body["status"]["message"]
    assert [e.reason for e in result.events] == ["InvalidManifest"]


def test_a_spec_change_starts_a_new_run_and_retires_the_old_runs_job(setup: Any) -> None:
    kube, rec, store = setup
    rec.reconcile("ns1", "toy")
    first_run = kube.body["status"]["runId"]
    (old_job,) = kube.jobs
    kube.body["spec"]["stages"][0]["params"]["count"] = 7
    kube.body["metadata"]["generation"] = 2
    rec.reconcile("ns1", "toy")
    assert kube.body["status"]["runId"] != first_run and kube.body["status"]["observedGeneration"] == 2
    assert kube.deleted == [old_job]
    assert runs.load(store, first_run)["phase"] == "Superseded"


def test_a_local_store_makes_the_pipeline_invalid_on_a_cluster(setup: Any) -> None:
    kube, _, _ = setup
    kube.body["spec"]["storage"] = {}  # the local default, file://.tycho/store
    reconciler.Reconciler(Settings(), kube).reconcile("ns1", "toy")  # type: ignore[arg-type]
    assert kube.body["status"]["phase"] == "Invalid" and kube.jobs == {}
    assert "spec.storage.url" in kube.body["status"]["message"] and "TYCHO_DEFAULT_STORE" in kube.body["status"]["message"]


def test_a_deleted_pipeline_is_left_to_the_garbage_collector(setup: Any) -> None:
    kube, rec, _ = setup
    kube.body["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert rec.reconcile("ns1", "toy").ref is None and kube.jobs == {}
