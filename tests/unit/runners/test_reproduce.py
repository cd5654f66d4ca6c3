"""``reproduce`` re-derives every output from the recorded code and compares bits."""

from __future__ import annotations

from tycho.runners import reproduce

from .conftest import Workspace


def test_a_deterministic_run_reproduces_bit_for_bit(ws: Workspace) -> None:
    original = ws.run()
    (ws.root / "code" / "generate.py").write_text("raise SystemExit('the working tree moved on')\n")
    result = reproduce.reproduce(original["runId"], ws.store_url, ws.reporter(), logs_dir=ws.root / "logs", view_dir=None)
    assert result["identical"] is True
    assert {(o["stage"], o["output"]) for o in result["outputs"]} == {
        ("generate", "numbers"), ("total", "total"), ("report", "report")}
    assert result["reproductionRunId"] != original["runId"]


def test_a_nondeterministic_output_is_reported_as_different(ws: Workspace) -> None:
    original = ws.run(ws.pipeline(**{"generate.nondeterministic": "true"}))
    result = reproduce.reproduce(original["runId"], ws.store_url, ws.reporter(), logs_dir=ws.root / "logs", view_dir=None)
    assert result["identical"] is False
    differing = [(o["stage"], o["output"]) for o in result["outputs"] if not o["identical"]]
    assert differing == [("generate", "numbers")]  # total and report are the same numbers again


def test_an_unknown_run_id_says_how_to_find_runs(ws: Workspace) -> None:
    import pytest

    with pytest.raises(LookupError, match="tycho runs"):
        reproduce.reproduce("nope", ws.store_url, ws.reporter())
