"""The local runner on the toy pipeline: records, cache hits, failures, retries, secrets."""

from __future__ import annotations

import json

import pytest

from tests.support.workspace import Workspace
from tycho.provenance import cache, documents, hashing, record, runs, store as store_mod
from tycho.reports import explain, lineage


def phases(summary: documents.RunSummary) -> dict[str, str]:
    return {n: e.phase for n, e in summary.stages.items()}


def test_first_run_executes_every_stage_and_records_provenance(ws: Workspace) -> None:
    summary = ws.run()
    assert summary.phase == "Succeeded" and summary.runner.executor == "subprocess"
    assert phases(summary) == {"generate": "Succeeded", "total": "Succeeded", "report": "Succeeded"}
    report = ws.object(summary.stages["report"].outputs["report"]).read_text()
    assert report == "total=20.0\nnotes=hello\n"  # 0+2+4+6+8 from params count=5, scale=2
    store = store_mod.Store(ws.store_url)
    total = summary.stages["total"]
    assert total.record == f"records/{summary.run_id}/total.json"
    doc = store.read_json(total.record)
    assert record.outputs_of(doc) == total.outputs
    deps = {d["name"]: d for d in record.dependencies(doc)}
    assert deps["input:numbers"]["annotations"]["producer"] == summary.stages["generate"].record
    assert total.metrics == {"running": 20.0, "total": 20.0}
    assert (ws.root / "runs" / summary.run_id / "report" / "report").read_text() == report


def test_second_run_is_all_cache_hits_and_executes_nothing(ws: Workspace) -> None:
    first = ws.run()
    second = ws.run()
    assert set(phases(second).values()) == {"Cached"}
    assert {n: e.outputs for n, e in second.stages.items()} == {n: e.outputs for n, e in first.stages.items()}
    assert not (ws.root / "store" / "records" / second.run_id).exists()
    assert all(e.record == first.stages[n].record for n, e in second.stages.items())
    assert not (ws.root / "runs" / second.run_id).exists()  # nothing executed: nothing to show


def test_output_views_are_read_only_links_to_the_stored_objects(ws: Workspace) -> None:
    summary = ws.run()
    view = ws.root / "runs" / summary.run_id / "total" / "total"
    stored = ws.object(summary.stages["total"].outputs["total"])
    assert view.read_text() == stored.read_text()
    assert not view.stat().st_mode & 0o222 and not stored.stat().st_mode & 0o222


def test_a_corrupted_output_is_not_a_hit(ws: Workspace) -> None:
    first = ws.run()
    stored = ws.object(first.stages["total"].outputs["total"])
    stored.chmod(0o644)
    stored.write_text("999\n")
    second = ws.run()
    assert phases(second) == {"generate": "Cached", "total": "Succeeded", "report": "Cached"}
    assert ws.object(first.stages["total"].outputs["total"]).read_text() == "20.0\n"


def test_a_param_change_reruns_the_stage_and_explain_says_why(ws: Workspace) -> None:
    ws.run()
    changed = ws.pipeline(**{"generate.count": "3"})
    rows = explain.explain(changed, ws.store_url, ws.root)
    assert rows[0].action == "run" and rows[0].changed == ["params.count: 5 -> 3"]
    assert [r.action for r in rows[1:]] == ["wait", "wait"]
    summary = ws.run(changed)
    assert phases(summary) == {"generate": "Succeeded", "total": "Succeeded", "report": "Succeeded"}
    assert explain.explain(changed, ws.store_url, ws.root)[2].action == "hit"


def test_changed_external_data_reruns_only_its_consumer(ws: Workspace) -> None:
    ws.run()
    ws.notes.write_text("changed\n")
    rows = explain.explain(ws.pipeline(), ws.store_url, ws.root)
    assert [r.action for r in rows] == ["hit", "hit", "run"]
    assert rows[2].changed[0].startswith("inputs.notes: ")
    assert phases(ws.run()) == {"generate": "Cached", "total": "Cached", "report": "Succeeded"}


def test_a_code_change_reruns_every_stage(ws: Workspace) -> None:
    ws.run()
    (ws.root / "code" / "helper.py").write_text("# new file\n")
    rows = explain.explain(ws.pipeline(), ws.store_url, ws.root)
    assert rows[0].changed[0].startswith("code: ")
    assert set(phases(ws.run()).values()) == {"Succeeded"}


def test_a_stage_is_keyed_on_the_distributions_it_imported_not_on_everything_installed(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key holds the interpreter only; the record and cache entry hold the versions of
    the distributions the stage imported (generate imports yaml), and a hit needs them."""
    first = ws.run(ws.pipeline(**{"generate.use_yaml": "true"}))
    gen = first.stages["generate"]
    assert set(gen.key_components["image"]["environment"]) == {"python", "implementation", "platform"}  # type: ignore[index]
    store = store_mod.Store(ws.store_url)
    entry = cache.read(store, gen.cache_key or "")
    assert entry is not None and entry.environment is not None and "pyyaml" in entry.environment
    env = json.loads(store.get_bytes(record.byproduct_digest(store.read_json(gen.record or ""), "environment") or ""))
    assert env["distributions"] == entry.environment
    # Another PyYAML installed now: not a hit, and explain says why.
    from tycho.stage import imports

    real = imports.version
    monkeypatch.setattr(imports, "version", lambda name: "0.1" if name == "pyyaml" else real(name))
    rows = explain.explain(ws.pipeline(**{"generate.use_yaml": "true"}), ws.store_url, ws.root)
    assert rows[0].action == "run" and f"pyyaml {entry.environment['pyyaml']} -> 0.1" in rows[0].reason


def test_a_flaky_stage_is_retried(ws: Workspace) -> None:
    marker = ws.root / "fail-once"
    marker.write_text("1")
    summary = ws.run(ws.pipeline(**{"total.fail_marker": str(marker)}))
    assert summary.phase == "Succeeded"
    assert summary.stages["total"].attempts == 2


def test_a_failing_stage_publishes_nothing_and_skips_downstream(ws: Workspace) -> None:
    marker = ws.root / "fail-always"
    marker.write_text("10")
    summary = ws.run(ws.pipeline(**{"total.fail_marker": str(marker)}))
    assert summary.phase == "Failed"
    assert phases(summary) == {"generate": "Succeeded", "total": "Failed", "report": "Skipped"}
    assert "failed after 3 attempt(s): exit code 3" in summary.stages["total"].message
    assert "failing on purpose" in summary.stages["total"].message
    records = ws.root / "store" / "records" / summary.run_id
    assert sorted(p.name for p in records.iterdir()) == ["generate.json"]
    assert not list((ws.root / "store" / "objects" / "sha256").glob("*.tmp-*"))


def test_a_stage_over_its_timeout_is_killed(ws: Workspace) -> None:
    ws.manifest.write_text(ws.manifest.read_text().replace("outputs: [numbers]",
                                                           "outputs: [numbers]\n      timeoutSeconds: 1"))
    summary = ws.run(ws.pipeline(**{"generate.sleep_seconds": "30"}))
    assert summary.stages["generate"].phase == "Failed"
    assert "timed out after 1s" in summary.stages["generate"].message


def test_external_data_that_changed_against_its_pinned_digest_fails_clearly(ws: Workspace) -> None:
    pinned = hashing.sha256_bytes(b"original\n")
    ws.manifest.write_text(ws.manifest.read_text().replace(f"url: file://{ws.notes}}}",
                                                           f"url: file://{ws.notes}, sha256: {pinned}}}"))
    summary = ws.run()
    message = summary.stages["report"].message
    assert f"expected {pinned}" in message and "update inputs[].sha256" in message


def test_user_code_never_sees_store_credentials(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    summary = ws.run()
    log = (ws.root / "logs" / summary.run_id / "total.log").read_text()
    assert "credentials visible: False" in log
    store_text = "".join(p.read_text(errors="ignore") for p in (ws.root / "store").rglob("*") if p.is_file())
    assert "s3cr3t-value" not in store_text


def test_lineage_walks_from_the_report_back_to_raw_data(ws: Workspace) -> None:
    summary = ws.run()
    steps = lineage.walk(store_mod.Store(ws.store_url), f"{summary.run_id}/report/report")
    stages = [s["stage"] for s in steps if s["kind"] == "stage"]
    assert stages == ["report", "total", "generate"]
    raw = [s for s in steps if s["kind"] == "raw"]
    assert raw == [{"kind": "raw", "sha256": hashing.sha256_file(ws.notes), "uri": f"file://{ws.notes}"}]
    assert steps[-1]["params"] == {"count": 5, "scale": 2, "nondeterministic": False, "sleep_seconds": 0,
                                   "use_yaml": False}
    by_digest = lineage.walk(store_mod.Store(ws.store_url), "sha256:" + summary.stages["total"].outputs["total"])
    assert [s["stage"] for s in by_digest if s["kind"] == "stage"] == ["total", "generate"]


def test_run_summaries_are_listed_in_order_and_typed(ws: Workspace) -> None:
    first, second = ws.run(), ws.run()
    store = store_mod.Store(ws.store_url)
    assert runs.run_ids(store, "toy") == [first.run_id, second.run_id]
    assert runs.latest(store, "toy").run_id == second.run_id  # type: ignore[union-attr]
    raw = json.loads((ws.root / "store" / "runs" / f"{first.run_id}.json").read_text())
    assert raw["format"] == documents.FORMAT and raw["phase"] == "Succeeded"
    assert documents.RunSummary.model_validate(raw) == runs.load(store, first.run_id)


def test_a_directory_output_is_stored_as_a_tree_and_arrives_downstream_as_a_folder(ws: Workspace) -> None:
    text = ws.manifest.read_text()
    text = text.replace("outputs: [numbers]", "outputs: [numbers, {name: shards, type: directory}]")
    text = text.replace("        - {name: numbers, from: generate/numbers}",
                        "        - {name: numbers, from: generate/numbers}\n"
                        "        - {name: shards, from: generate/shards}")
    ws.manifest.write_text(text)
    summary = ws.run(ws.pipeline(**{"+generate.shards": "3"}))
    assert summary.phase == "Succeeded", summary.stages
    log = (ws.root / "logs" / summary.run_id / "total.log").read_text()
    assert "shards seen: part-0,part-1,sub/part-2" in log
    view = ws.root / "runs" / summary.run_id / "generate" / "shards"
    assert sorted(p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file()) == [
        "part-0", "part-1", "sub/part-2"]
    again = ws.run(ws.pipeline(**{"+generate.shards": "3"}))
    assert set(phases(again).values()) == {"Cached"}
