"""The team's view in the terminal, over real digits runs: listing sorted by a metric with
chosen columns, folding of a rerun that executed nothing, ``show`` and ``diff``."""

from __future__ import annotations

import json

import pytest

from tests.board.conftest import DigitsRuns

pytestmark = pytest.mark.e2e


def test_runs_sorted_by_a_metric_show_the_chosen_columns_best_first(digits: DigitsRuns) -> None:
    doc = json.loads(digits.tycho("runs", "--sort", "gate_threshold", "--columns",
                                  "release.threshold,gate_threshold,test_accuracy", "--json").stdout)
    assert [r["runId"] for r in doc["runs"]] == [digits.ids["strict"], digits.ids["candidate"], digits.ids["first"]]
    assert [r["values"]["release.threshold"] for r in doc["runs"]] == [0.7, 0.6, 0.5]
    assert all(0.5 <= r["values"]["test_accuracy"] <= 1 for r in doc["runs"])
    text = digits.tycho("runs", "--sort", "test_accuracy", "--columns", "train.epochs,test_accuracy").stdout
    assert "train.epochs" in text and "test_accuracy" in text and digits.ids["first"] in text


def test_a_rerun_that_executed_nothing_is_folded_into_the_run_it_repeated(digits: DigitsRuns) -> None:
    listed = json.loads(digits.tycho("runs", "--json").stdout)["runs"]
    assert digits.ids["rerun"] not in [r["runId"] for r in listed]
    first = next(r for r in listed if r["runId"] == digits.ids["first"])
    assert first["repeats"] == 1
    everything = json.loads(digits.tycho("runs", "--all", "--json").stdout)["runs"]
    assert digits.ids["rerun"] in [r["runId"] for r in everything]
    views = digits.workdir / ".tycho" / "runs"
    assert not (views / digits.ids["rerun"]).exists()  # nothing executed: nothing copied for reading
    assert (views / digits.ids["candidate"] / "release" / "registry_entry").is_file()
    assert not (views / digits.ids["candidate"] / "train").exists()


def test_runs_filter_by_tag_and_metric(digits: DigitsRuns) -> None:
    doc = json.loads(digits.tycho("runs", "--filter", "tag=candidate", "--json").stdout)
    assert [r["runId"] for r in doc["runs"]] == [digits.ids["candidate"]]
    doc = json.loads(digits.tycho("runs", "-f", "gate_threshold>=0.6 OR release.threshold in (0.5)",
                                  "-f", "test_accuracy is present", "--json").stdout)
    assert {r["runId"] for r in doc["runs"]} == {digits.ids["first"], digits.ids["candidate"], digits.ids["strict"]}
    csv = digits.tycho("runs", "--columns", "release.threshold", "--sort", "release.threshold:asc", "--csv").stdout
    assert csv.splitlines()[1] == f"{digits.ids['first']},0.5"


def test_diff_names_the_changed_param_the_reexecuted_stage_and_metric_deltas(digits: DigitsRuns) -> None:
    a, b = digits.ids["first"], digits.ids["strict"]
    doc = json.loads(digits.tycho("diff", a, b, "--json").stdout)
    params = next(s for s in doc["comparison"]["sections"] if s["name"] == "params")
    assert [(r["key"], r["values"]) for r in params["rows"] if r["changed"]] == [("release.threshold", [0.5, 0.7])]
    executed = {w["stage"]: w for w in doc["stages"] if w["executed"]}
    assert list(executed) == ["release"] and "params.threshold: 0.5 -> 0.7" in executed["release"]["reason"]
    metrics = next(s for s in doc["comparison"]["sections"] if s["name"] == "metrics")
    gate = next(r for r in metrics["rows"] if r["key"] == "gate_threshold")
    assert gate["changed"] and abs(gate["deltas"][1] - 0.2) < 1e-9
    text = digits.tycho("diff", a[-4:], b[-4:]).stdout
    assert "release.threshold" in text and "executed: its cache key changed" in text and "+0.2" in text


def test_show_lists_stages_hits_metrics_artifacts_and_records(digits: DigitsRuns) -> None:
    doc = json.loads(digits.tycho("show", digits.ids["candidate"], "--json").stdout)
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["release"]["executed"] and stages["train"]["phase"] == "Cached"
    assert stages["train"]["reusedFrom"] == digits.ids["first"]
    kinds = {a["name"]: a["mediaType"] for s in doc["stages"] for a in s["artifacts"]}
    assert kinds["confusion_matrix"] == "image/png" and kinds["report_html"] == "text/html"
    text = digits.tycho("show", digits.ids["candidate"]).stdout
    assert "cache hit" in text and "records/" in text and "evaluate/confusion_matrix" in text
