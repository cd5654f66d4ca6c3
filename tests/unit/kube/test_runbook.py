"""Run ids and run summaries of cluster runs, on a local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.kube import kubefakes as fk
from tycho.api import models, validation
from tycho.kube import runbook
from tycho.provenance import runs, store as store_mod
from tycho.settings import Settings


def _current(book: runbook.RunBook, store: store_mod.Store, pipeline: models.ExperimentPipeline,
             run_id: str | None) -> tuple[dict[str, Any], bool]:
    return book.current(store, pipeline, run_id, Settings(), "2025-01-01T00:00:00.000Z",
                        lambda p: {fk.NOTES_URL: fk.NOTES_SHA})


def test_first_reconcile_starts_a_run_with_a_summary(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path}")
    summary, fresh = _current(runbook.RunBook(), store, fk.toy(), None)
    assert fresh and summary["runId"].startswith("toy-") and summary["runner"] == "kubernetes"
    assert runs.run_ids(store, "toy") == [summary["runId"]]
    assert summary["external"] == {fk.NOTES_URL: fk.NOTES_SHA}
    assert set(summary["stages"]) == {"generate", "total", "report"}


def test_same_spec_continues_the_run_even_after_a_restart(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path}")
    first, _ = _current(runbook.RunBook(), store, fk.toy(), None)
    again, fresh = _current(runbook.RunBook(), store, fk.toy(), first["runId"])  # new process: empty cache
    assert not fresh and again["runId"] == first["runId"]


def test_suspend_and_resume_continue_the_same_run(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path}")
    book = runbook.RunBook()
    first, _ = _current(book, store, fk.toy(), None)
    suspended, fresh = _current(book, store, fk.toy(suspend=True), first["runId"])
    assert not fresh and suspended["runId"] == first["runId"]


def test_a_spec_change_starts_a_new_run_and_supersedes_the_running_one(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path}")
    book = runbook.RunBook()
    first, _ = _current(book, store, fk.toy(), None)
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["params"]["count"] = 9
    second, fresh = _current(book, store, validation.check(doc), first["runId"])
    assert fresh and second["runId"] != first["runId"]
    assert runs.load(store, first["runId"])["phase"] == "Superseded"
    assert runs.run_ids(store, "toy") == sorted([first["runId"], second["runId"]])


def test_record_folds_stage_results_into_the_summary_and_skips_no_op_writes(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path}")
    book = runbook.RunBook()
    summary, _ = _current(book, store, fk.toy(), None)
    status = models.Status(phase="Succeeded", run_id=summary["runId"], stages=[
        models.StageStatus(name="generate", phase="Succeeded", cache_key="k", provenance="rec",
                           outputs=[models.OutputStatus(name="numbers", sha256="1" * 64, uri="u")], attempts=1)])
    assert book.record(store, summary, status, {"generate": {"params": {"count": 5}}}, {"generate": "img@sha256:1"}, "t")
    saved = runs.load(store, summary["runId"])
    entry = saved["stages"]["generate"]
    assert entry["outputs"] == {"numbers": "1" * 64} and entry["record"] == "rec"
    assert entry["keyComponents"] == {"params": {"count": 5}} and entry["image"]["imageID"] == "img@sha256:1"
    assert saved["phase"] == "Succeeded" and saved["finishedAt"] == "t"
    assert not book.record(store, saved, status, {"generate": {"params": {"count": 5}}}, {"generate": "img@sha256:1"}, "t")
