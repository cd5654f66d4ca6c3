"""``reproduce`` re-derives every output from the recorded code and compares bits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.support.workspace import Workspace
from tycho.provenance import runs, store as store_mod
from tycho.reports import lineage
from tycho.runners import reproduce


def test_a_deterministic_run_reproduces_bit_for_bit(ws: Workspace) -> None:
    original = ws.run()
    (ws.root / "code" / "generate.py").write_text("raise SystemExit('the working tree moved on')\n")
    result = reproduce.reproduce(original.run_id, ws.store_url, ws.reporter(), ws.executor(), view_dir=None)
    assert result.identical is True
    assert {(o.stage, o.output) for o in result.outputs} == {
        ("generate", "numbers"), ("total", "total"), ("report", "report")}
    assert result.reproduction_run_id != original.run_id
    assert runs.load(store_mod.Store(ws.store_url), result.reproduction_run_id).reproduces == original.run_id


def test_a_nondeterministic_output_is_reported_as_different(ws: Workspace) -> None:
    original = ws.run(ws.pipeline(**{"generate.nondeterministic": "true"}))
    result = reproduce.reproduce(original.run_id, ws.store_url, ws.reporter(), ws.executor(), view_dir=None)
    assert result.identical is False
    differing = [(o.stage, o.output) for o in result.outputs if not o.identical]
    assert differing == [("generate", "numbers")]  # total and report are the same numbers again


def test_an_unknown_run_id_says_how_to_find_runs(ws: Workspace) -> None:
    import pytest

    with pytest.raises(LookupError, match="tycho runs"):
        reproduce.reproduce("nope", ws.store_url, ws.reporter(), ws.executor())


def test_a_store_copied_elsewhere_still_traces_and_reproduces(ws: Workspace) -> None:
    original = ws.run()
    moved = ws.root / "elsewhere" / "store-copy"
    shutil.copytree(ws.root / "store", moved)
    shutil.rmtree(ws.root / "store")
    store = store_mod.Store(f"file://{moved}")
    steps = lineage.walk(store, f"{original.run_id}/report/report")
    assert [s["stage"] for s in steps if s["kind"] == "stage"] == ["report", "total", "generate"]
    result = reproduce.reproduce(original.run_id, store.url, ws.reporter(), ws.executor(), view_dir=None)
    assert result.identical is True


def test_the_cli_reproduces_a_run_and_exits_1_when_bits_differ(ws: Workspace) -> None:
    original = ws.run(ws.pipeline(**{"generate.nondeterministic": "true"}))
    proc = subprocess.run([sys.executable, "-m", "tycho", "reproduce", original.run_id, "--store", ws.store_url,
                           "--json"], cwd=ws.root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["identical"] is False and report["runId"] == original.run_id


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tycho", *args, "--store", ws.store_url, "--json"], cwd=ws.root,
                          capture_output=True, text=True, timeout=300)


def test_a_difference_says_how_many_bytes_differ_and_which_facts_differ(ws: Workspace) -> None:
    original = ws.run(ws.pipeline(**{"generate.nondeterministic": "true"}))
    result = reproduce.reproduce(original.run_id, ws.store_url, ws.reporter(), ws.executor(), view_dir=None)
    numbers = next(o for o in result.outputs if o.output == "numbers")
    assert numbers.bytes_differing is not None and 0 < numbers.bytes_differing <= 21
    assert numbers.size_recorded == numbers.size_reproduced
    assert result.environment == {"generate": []}  # same machine: the stage itself is not deterministic


def test_a_corrupt_code_archive_is_one_line_of_json_not_a_traceback(ws: Workspace) -> None:
    original = ws.run()
    archive = ws.object((original.code.archive or "").rsplit("/", 1)[1]) if original.code else None
    assert archive is not None
    archive.chmod(0o644)
    archive.write_bytes(b"not a tar")
    proc = _cli(ws, "reproduce", original.run_id)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert original.code is not None and original.code.archive is not None
    assert error.startswith(original.code.archive + ":"), error


def test_a_record_with_broken_json_is_one_line_not_a_traceback(ws: Workspace) -> None:
    original = ws.run()
    summary = json.loads((ws.root / "store" / "runs" / f"{original.run_id}.json").read_text())
    summary["code"] = None  # reproduce must find the code through the records
    (ws.root / "store" / "runs" / f"{original.run_id}.json").write_text(json.dumps(summary))
    record = ws.root / "store" / (original.stages["generate"].record or "")
    record.chmod(0o644)
    record.write_text("{broken")
    proc = _cli(ws, "reproduce", original.run_id)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["error"].startswith(original.stages["generate"].record or "")


def test_a_corrupt_stored_output_is_reported_and_healed_by_reproduce(ws: Workspace) -> None:
    original = ws.run()
    stored = ws.object(original.stages["total"].outputs["total"])
    stored.chmod(0o644)
    stored.write_text("999\n")
    result = reproduce.reproduce(original.run_id, ws.store_url, ws.reporter(), ws.executor(), view_dir=None)
    assert result.identical is False  # the original's evidence was corrupt: not "identical"
    assert any(p.startswith(f"objects/sha256/{original.stages['total'].outputs['total']}:") for p in result.problems)
    assert stored.read_text() == "20.0\n"  # re-deriving the output replaced the corrupt object
