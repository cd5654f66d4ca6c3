"""``reproduce`` re-derives every output from the recorded code and compares bits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tycho.provenance import runs, store as store_mod
from tycho.reports import lineage
from tycho.runners import reproduce

from .conftest import Workspace


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
