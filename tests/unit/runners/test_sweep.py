"""Sweeps on this machine: trials are stage executions with their own keys, records and
outputs; the best one feeds downstream; more trials run only the new ones; early
stopping is decided where the trial runs; the whole search reproduces bit for bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from tycho.api import models, problems, validation
from tycho.engine import search
from tycho.executors import process
from tycho.provenance import audit, documents, record, store as store_mod
from tycho.reports import verify
from tycho.runners import local, progress, reproduce

TOY = Path(__file__).resolve().parents[2] / "fixtures" / "toy"


class SweepSpace:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(TOY / "code", root / "code")
        self.doc: dict[str, Any] = yaml.safe_load((TOY / "sweep.yaml").read_text())
        self.store_url = f"file://{root / 'store'}"

    @property
    def sweep(self) -> dict[str, Any]:
        sweep: dict[str, Any] = self.doc["spec"]["stages"][1]["sweep"]
        return sweep

    def pipeline(self) -> models.ExperimentPipeline:
        return validation.check(self.doc)

    def executor(self) -> process.ProcessExecutor:
        return process.ProcessExecutor(self.root / "work", self.root / "logs",
                                       progress.LineReporter(Console(quiet=True)))

    def run(self) -> documents.RunSummary:
        opts = local.Options(store_url=self.store_url, manifest_dir=self.root, logs_dir=self.root / "logs",
                             view_dir=None)
        return local.run(self.pipeline(), opts, progress.LineReporter(Console(quiet=True)), self.executor()).summary


@pytest.fixture
def sp(tmp_path: Path) -> SweepSpace:
    return SweepSpace(tmp_path)


def _spans(store: store_mod.Store, trials: list[documents.TrialResult]) -> list[tuple[str, str]]:
    spans = []
    for t in trials:
        meta = store.read_json(t.record or "")["predicate"]["runDetails"]["metadata"]
        spans.append((meta["startedOn"], meta["finishedOn"]))
    return spans


def test_trials_are_executions_and_the_best_feeds_downstream(sp: SweepSpace) -> None:
    sp.sweep["parameters"]["x"] = {"values": [0.0, 3.0, 5.0]}
    sp.sweep.update(algorithm="grid", trials=6, parallelism=2)
    summary = sp.run()
    assert summary.phase == "Succeeded"
    score = summary.stages["score"]
    assert score.trials is not None and len(score.trials) == 6
    assert len({t.cache_key for t in score.trials}) == 6 and all(t.phase == "Succeeded" for t in score.trials)
    best = max(score.trials, key=lambda t: (t.objective if t.objective is not None else -1e9, -t.index))
    assert best.params == {"x": 3.0, "y": 1.0} and best.objective == 0.0
    assert score.selection is not None and score.selection.trial == best.index
    assert score.outputs == best.outputs and score.record == best.record
    assert score.record == f"records/{summary.run_id}/score/trial-{best.index}.json"
    store = store_mod.Store(sp.store_url)
    trial_record = store.read_json(best.record or "")
    assert trial_record["predicate"]["buildDefinition"]["externalParameters"]["params"]["x"] == 3.0
    pick = store.read_json(summary.stages["pick"].record or "")
    producer = next(d for d in record.dependencies(pick) if d["name"] == "input:model")["annotations"]["producer"]
    assert producer == best.record  # lineage goes through the trial that made the bits
    # never more than `parallelism` trials at once
    spans = _spans(store, score.trials)
    assert max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans) <= 2
    # every trial's record is checked by verify: signed, its objects re-hashed
    report = verify.verify(store, [summary.run_id], audit.trusted_keys(store))
    assert report.problems == [] and report.checked["records"] == 6 + 2


def test_more_trials_run_only_the_new_ones_and_reproduce_picks_the_same_trial(sp: SweepSpace) -> None:
    sp.sweep.update(trials=4, parallelism=2)
    first = sp.run()
    sp.sweep.update(trials=6)
    second = sp.run()
    trials = second.stages["score"].trials or []
    assert [t.phase for t in trials] == ["Cached"] * 4 + ["Succeeded"] * 2
    assert [t.params for t in trials[:4]] == [t.params for t in first.stages["score"].trials or []]
    report = reproduce.reproduce(second.run_id, sp.store_url, progress.LineReporter(Console(quiet=True)),
                                 sp.executor(), view_dir=None)
    assert report.identical, [o for o in report.outputs if not o.identical]
    again = store_mod.Store(sp.store_url)
    from tycho.provenance import runs
    reproduced = runs.load(again, report.reproduction_run_id).stages["score"]
    assert reproduced.selection == second.stages["score"].selection
    assert [t.phase for t in reproduced.trials or []] == ["Succeeded"] * 6  # cache ignored: every trial ran


def test_early_stopping_is_applied_where_the_trial_runs_and_is_cached(sp: SweepSpace) -> None:
    sp.sweep.update(algorithm="grid", trials=3, parallelism=1, seed=3,
                    parameters={"x": {"values": [3.0, 2.5, 9.0]}, "y": {"values": [1.0]}},
                    earlyStopping={"rule": "median", "minSteps": 1})
    sp.doc["spec"]["stages"][1]["params"].update(steps=6)
    order = [p["x"] for b in range(3) for p in search.suggest(sp.pipeline().spec.stages[1].sweep, b, [])]  # type: ignore[arg-type]
    assert order.index(9.0) > 0, "the bad trial must come after a good one for this test"
    summary = sp.run()
    trials = summary.stages["score"].trials or []
    bad = next(t for t in trials if t.params["x"] == 9.0)
    assert bad.phase == "Stopped" and bad.stopped_at == 1 and list(bad.outputs) == ["metrics.jsonl"]  # no model
    assert "stopped early at step 1" in bad.message and bad.curve  # its curve up to the stop is kept
    assert summary.stages["score"].selection.trial != bad.index  # type: ignore[union-attr]
    again = sp.run()
    assert [t.phase for t in again.stages["score"].trials or []] == ["Cached" if t.phase != "Stopped" else "Stopped"
                                                                      for t in trials]


def test_a_sweep_that_cannot_be_run_is_refused_with_its_field_path(sp: SweepSpace) -> None:
    sp.sweep.update(algorithm="grid", trials=10)
    with pytest.raises(problems.InvalidManifest) as err:
        sp.pipeline()
    text = str(err.value)
    assert "spec.stages[1].sweep.algorithm: grid search needs values for every parameter" in text
    sp.sweep["parameters"]["x"] = {"low": 1.0, "high": 0.5}
    sp.sweep["algorithm"] = "tpe"
    with pytest.raises(problems.InvalidManifest, match=r"sweep.parameters.x: low 1 is not below high 0.5"):
        sp.pipeline()


def test_suggestions_are_remembered_in_the_store_so_a_rerun_needs_no_optimiser(sp: SweepSpace) -> None:
    sp.sweep.update(trials=4, parallelism=2)
    first = sp.run()
    memos = sorted((sp.root / "store" / "cache" / "suggestions").glob("*.json"))
    assert len(memos) == 2  # one per batch
    from tycho.engine import lookup
    store = store_mod.Store(sp.store_url)
    sweep = sp.pipeline().spec.stages[1].sweep
    assert sweep is not None
    remembered = lookup.StoreSuggestions(store)(sweep, 0, [])
    assert remembered == search.suggest(sweep, 0, []) == [t.params for t in (first.stages["score"].trials or [])[:2]]
    memos[0].write_text("[not json")  # a broken memo is recomputed, never trusted
    again = sp.run()
    assert [t.params for t in again.stages["score"].trials or []] == [
        t.params for t in first.stages["score"].trials or []]


def test_verify_recomputes_remembered_suggestions_and_names_an_edited_one(sp: SweepSpace) -> None:
    sp.sweep.update(trials=4, parallelism=2)
    sp.run()
    store = store_mod.Store(sp.store_url)
    assert verify.verify(store, None, audit.trusted_keys(store)).problems == []
    memo = sorted((sp.root / "store" / "cache" / "suggestions").glob("*.json"))[-1]
    doc = json.loads(memo.read_text())
    doc["suggestions"][0] = {name: 0.5 for name in doc["suggestions"][0]}  # parses, and is a lie
    memo.write_text(json.dumps(doc))
    problems = verify.verify(store, None, audit.trusted_keys(store)).problems
    rel = memo.relative_to(sp.root / "store").as_posix()
    assert problems == [f"{rel}: sweep suggestions differ from what the search answers to their question"]


def test_explain_names_only_real_changes_of_a_sweep_that_waits_for_its_inputs(sp: SweepSpace) -> None:
    """The key of a sweep stage covers its sweep: explain's guess for a stage that waits
    must build it the same way, or it reports a change that is not there."""
    from tycho.reports import explain

    sp.sweep.update(trials=2, parallelism=2)
    assert sp.run().phase == "Succeeded"
    sp.doc["spec"]["stages"][0]["params"]["count"] = 4  # generate reruns, so score waits
    rows = {r.stage: r for r in explain.explain(sp.pipeline(), sp.store_url, sp.root, sp.executor())}
    assert rows["generate"].action == "run" and rows["generate"].changed == ["params.count: 3 -> 4"]
    assert rows["score"].action == "wait" and rows["score"].changed == []
    sp.sweep.update(trials=3)
    rows = {r.stage: r for r in explain.explain(sp.pipeline(), sp.store_url, sp.root, sp.executor())}
    assert rows["score"].changed == ["sweep.trials: 2 -> 3"]
