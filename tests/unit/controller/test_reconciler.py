"""The reconcile against an in-memory API server (playing the watches too) and a local
store: the glue between the watched world, the engine's step, and writing Jobs, status
and the run summary. The real API server is in tests/cluster."""

from __future__ import annotations

import collections
import copy
from pathlib import Path
from typing import Any

import pytest

from tests.unit.kube import kubefakes as fk
from tycho.controller import reconciler
from tycho.kube import jobs as jobs_mod, naming
from tycho.provenance import cache, documents, layout, runs, store as store_mod
from tycho.settings import Settings


class FakeKube:
    """The API server: Jobs and the pipeline object; counts every call."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.deleted: list[str] = []

    def replace_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.calls["status"] += 1
        self.body["status"] = copy.deepcopy(status)

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        self.calls["create"] += 1
        name = manifest["metadata"]["name"]
        if name in self.jobs:
            return self.jobs[name], False
        self.jobs[name] = fk.finish(manifest, "Running")
        return self.jobs[name], True

    def job_pods(self, ns: str, uid: str) -> list[dict[str, Any]]:
        self.calls["pods"] += 1
        return []

    def delete_job(self, ns: str, name: str) -> None:
        self.calls["delete"] += 1
        self.deleted.append(name)
        self.jobs.pop(name, None)

    def world(self, *, lagging: bool = False) -> reconciler.World:
        """What the watches show (``lagging``: they have not caught up with the writes)."""
        if lagging:
            return reconciler.World(pipeline=copy.deepcopy(self.body), jobs={})
        return reconciler.World(pipeline=copy.deepcopy(self.body), jobs=copy.deepcopy(self.jobs))


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
    rec = reconciler.Reconciler(Settings(), kube)  # type: ignore[arg-type]
    return kube, rec, store_mod.Store(f"file://{tmp_path}/store")


@pytest.fixture(autouse=True)
def local_store_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here "pods" share this disk, so a file:// store stands in for the object store."""
    monkeypatch.setattr(jobs_mod, "store_problems", lambda url: [])


def _publish(store: store_mod.Store, job: dict[str, Any], kube: FakeKube) -> None:
    """What the stage wrapper writes, minus running code: outputs and the cache entry."""
    key = job["metadata"]["annotations"][naming.ANNOTATION_KEY]
    stage = job["metadata"]["labels"][naming.LABEL_STAGE]
    out = {"generate": "numbers", "total": "total", "report": "report"}[stage]
    digest = store.put_bytes(f"{stage}\n".encode())
    cache.write(store, documents.CacheEntry(key=key, record=f"records/x/{stage}.json", outputs={out: digest},
                                        metrics={"n": 1.0}))
    kube.jobs[job["metadata"]["name"]] = fk.finish(job, "Succeeded")


def _job(kube: FakeKube, stage: str) -> dict[str, Any]:
    return next(j for j in kube.jobs.values() if j["metadata"]["labels"][naming.LABEL_STAGE] == stage)


def test_reconciling_drives_the_run_and_keeps_the_typed_summary(setup: Any) -> None:
    kube, rec, store = setup
    result = rec.reconcile(kube.world())
    assert [j["metadata"]["labels"][naming.LABEL_STAGE] for j in kube.jobs.values()] == ["generate"]
    run_id = kube.body["status"]["runId"]
    assert run_id.startswith("toy-g1-") and kube.body["status"]["specDigest"]
    assert [e.reason for e in result.events] == ["RunStarted", "StageStarted"]
    for stage in ("generate", "total", "report"):
        _publish(store, _job(kube, stage), kube)
        rec.reconcile(kube.world())
    status = kube.body["status"]
    assert status["phase"] == "Succeeded" and status["runId"] == run_id and status["progress"] == "3/3"
    summary = runs.load(store, run_id)
    assert summary.phase == "Succeeded" and summary.runner.executor == "kubernetes"
    assert [e.phase for e in summary.stages.values()] == ["Succeeded"] * 3
    assert summary.stages["report"].key_components["inputs"]["notes"]  # type: ignore[index]
    assert summary.stages["report"].record == "records/x/report.json"  # relative to the store
    assert status["stages"][2]["provenance"] == f"{store.url}/records/x/report.json"  # absolute for people


def test_an_idle_reconcile_makes_no_api_call(setup: Any) -> None:
    kube, rec, _ = setup
    rec.reconcile(kube.world())
    before = sum(kube.calls.values())
    assert rec.reconcile(kube.world(lagging=True)).events == []  # the watches have not shown our writes yet
    assert rec.reconcile(kube.world()).events == []
    assert rec.reconcile(kube.world()).events == []
    assert sum(kube.calls.values()) == before


def test_a_restarted_operator_continues_the_same_run_and_adopts_its_job(setup: Any) -> None:
    kube, rec, _ = setup
    rec.reconcile(kube.world())
    run_id = kube.body["status"]["runId"]
    fresh = reconciler.Reconciler(Settings(), kube)
    fresh.reconcile(kube.world())
    assert kube.body["status"]["runId"] == run_id and kube.calls["create"] == 1


def test_an_operator_killed_before_writing_status_finds_its_run_and_jobs(setup: Any) -> None:
    kube, rec, _ = setup
    rec.reconcile(kube.world())
    run_id = kube.body["status"]["runId"]
    kube.body.pop("status")  # as if the status write never happened
    reconciler.Reconciler(Settings(), kube).reconcile(kube.world())
    assert kube.body["status"]["runId"] == run_id and len(kube.jobs) == 1 and kube.calls["create"] == 1


def test_an_invalid_manifest_gets_status_invalid_and_no_job(setup: Any) -> None:
    kube, rec, _ = setup
    kube.body["spec"]["stages"][1]["inputs"][0]["from"] = "nope/numbers"
    result = rec.reconcile(kube.world())
    assert kube.jobs == {}
    assert kube.body["status"]["phase"] == "Invalid"
    assert "spec.stages[1].inputs[0].from" in kube.body["status"]["message"]
    assert [e.reason for e in result.events] == ["InvalidManifest"]


def test_a_spec_change_starts_a_new_run_and_retires_the_old_runs_job(setup: Any) -> None:
    kube, rec, store = setup
    rec.reconcile(kube.world())
    first_run = kube.body["status"]["runId"]
    (old_job,) = kube.jobs
    kube.body["spec"]["stages"][0]["params"]["count"] = 7
    kube.body["metadata"]["generation"] = 2
    rec.reconcile(kube.world())
    assert kube.body["status"]["runId"] != first_run and kube.body["status"]["observedGeneration"] == 2
    assert kube.deleted == [old_job]
    assert runs.load(store, first_run).phase == "Superseded"


def test_suspend_and_resume_keep_the_run(setup: Any) -> None:
    kube, rec, _ = setup
    rec.reconcile(kube.world())
    run_id = kube.body["status"]["runId"]
    kube.body["spec"]["suspend"] = True
    kube.body["metadata"]["generation"] = 2
    rec.reconcile(kube.world())
    assert kube.jobs == {} and kube.body["status"]["phase"] == "Suspended"
    kube.body["spec"]["suspend"] = False
    kube.body["metadata"]["generation"] = 3
    rec.reconcile(kube.world())
    assert kube.body["status"]["runId"] == run_id and len(kube.jobs) == 1


def test_a_reproduction_ignores_the_cache_and_names_the_run_it_reproduces(setup: Any) -> None:
    kube, rec, store = setup
    rec.reconcile(kube.world())
    _publish(store, _job(kube, "generate"), kube)
    kube.jobs.clear()
    kube.body["metadata"].update(name="toy-r1", uid="uid-2", annotations={naming.ANNOTATION_REPRODUCES: "toy-old"})
    kube.body.pop("status")
    rec.reconcile(kube.world())
    assert [j["metadata"]["labels"][naming.LABEL_STAGE] for j in kube.jobs.values()] == ["generate"]
    assert runs.load(store, kube.body["status"]["runId"]).reproduces == "toy-old"


def test_a_local_store_makes_the_pipeline_invalid_on_a_cluster(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kube, _, _ = setup
    monkeypatch.undo()
    kube.body["spec"]["storage"] = {}  # the local default, file://.tycho/store
    reconciler.Reconciler(Settings(), kube).reconcile(kube.world())
    assert kube.body["status"]["phase"] == "Invalid" and kube.jobs == {}
    assert ("spec.storage.url" in kube.body["status"]["message"]
            and "TYCHO_DEFAULT_STORE" in kube.body["status"]["message"])


def test_a_deleted_pipeline_is_left_to_the_garbage_collector(setup: Any) -> None:
    kube, rec, _ = setup
    kube.body["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert rec.reconcile(kube.world()).ref is None and kube.jobs == {}
    assert rec.reconcile(reconciler.World(pipeline=None, jobs={})).ref is None


def test_summaries_name_store_content_relative_to_the_store(setup: Any) -> None:
    kube, rec, store = setup
    rec.reconcile(kube.world())
    raw = store.read_json(layout.summary_rel(kube.body["status"]["runId"]))
    assert raw["format"] == documents.FORMAT and "file://" not in raw["code"]["digest"]
