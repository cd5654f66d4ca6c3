"""The run index over a real local store: incremental sync, filters, sorting, columns,
folding of runs that executed nothing, and the provenance lookups."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.unit.index import runs_fixture as rf
from tycho.index import db, lookups, query
from tycho.provenance import layout, store as store_mod


@pytest.fixture
def store(tmp_path: Path) -> store_mod.Store:
    return store_mod.Store(f"file://{tmp_path / 'store'}")


@pytest.fixture
def index(store: store_mod.Store, tmp_path: Path) -> db.Index:
    rf.save(store,
            rf.summary("demo-a", minute=0, epochs=10, lr=0.01, accuracy=0.91, tags=("demo", "baseline")),
            rf.summary("demo-b", minute=1, epochs=30, lr=0.003, accuracy=0.97, owner="ben"),
            rf.summary("demo-c", minute=2, epochs=20, lr=0.01, accuracy=None, tags=("demo", "broken")),
            rf.summary("demo-d", minute=3, epochs=30, lr=0.003, cached_from="demo-b", owner="ben"))
    ix = db.Index(store, str(tmp_path / "index.sqlite"))
    ix.sync()
    return ix


def ids(listing: query.Listing) -> list[str]:
    return [r.run_id for r in listing.runs]


def test_sorting_by_a_metric_puts_the_best_first_and_runs_without_it_last(index: db.Index) -> None:
    assert ids(query.list_runs(index, sort="test_accuracy")) == ["demo-b", "demo-a", "demo-c"]
    assert ids(query.list_runs(index, sort="test_accuracy:asc")) == ["demo-a", "demo-b", "demo-c"]
    assert ids(query.list_runs(index)) == ["demo-c", "demo-b", "demo-a"]  # newest first


def test_columns_show_params_and_metrics_with_their_types(index: db.Index) -> None:
    listing = query.list_runs(index, sort="test_accuracy", columns=["train.epochs", "test_accuracy", "tag", "owner"])
    assert [(c.key, c.kind) for c in listing.columns] == [("train.epochs", "param"), ("test_accuracy", "metric"),
                                                          ("tag", "tag"), ("owner", "attribute")]
    best = listing.runs[0]
    assert best.values == {"train.epochs": 30, "test_accuracy": 0.97, "tag": ["demo"], "owner": "ben"}
    assert isinstance(best.values["train.epochs"], int)


@pytest.mark.parametrize("expr, expected", [
    ("test_accuracy>=0.95", ["demo-b"]),
    ("train.epochs=30", ["demo-b"]),
    ("train.epochs in (10, 20)", ["demo-c", "demo-a"]),
    ("train.lr=0.01 AND tag=baseline", ["demo-a"]),
    ("tag=broken OR owner=ben", ["demo-c", "demo-b"]),
    ("owner~'^a'", ["demo-c", "demo-a"]),
    ("test_accuracy is missing", ["demo-c"]),
    ("tag!=baseline", ["demo-c", "demo-b"]),
    ("not (phase=Succeeded)", []),
    ("prepare.source=demo and train.epochs>15", ["demo-c", "demo-b"]),
    ("prepare.rows=100", ["demo-c", "demo-b", "demo-a"]),
])
def test_filters_on_metrics_params_tags_and_attributes(index: db.Index, expr: str, expected: list[str]) -> None:
    assert ids(query.list_runs(index, filter_texts=[expr])) == expected


def test_an_unknown_key_warns_instead_of_silently_matching_nothing(index: db.Index) -> None:
    listing = query.list_runs(index, filter_texts=["tset_accuracy>0.5"])
    assert listing.runs == [] and "tset_accuracy" in listing.warnings[0]
    with pytest.raises(query.QueryError, match="expected"):
        query.list_runs(index, filter_texts=["test_accuracy >"])


def test_runs_that_executed_nothing_fold_into_the_run_they_repeated(index: db.Index) -> None:
    listing = query.list_runs(index)
    assert "demo-d" not in ids(listing)
    assert next(r for r in listing.runs if r.run_id == "demo-b").repeats == 1
    everything = query.list_runs(index, all_runs=True)
    assert ids(everything)[0] == "demo-d" and everything.runs[0].repeat_of == "demo-b"


def test_only_changed_hides_columns_equal_across_the_listed_runs(index: db.Index) -> None:
    listing = query.list_runs(index, columns=["train.epochs", "prepare.source", "pipeline"], only_changed=True)
    assert [c.key for c in listing.columns] == ["train.epochs"]
    assert listing.hidden == ["prepare.source", "pipeline"]


def test_since_keeps_recent_runs(index: db.Index) -> None:
    now = dt.datetime.fromisoformat(rf.stamp(2.5).replace("Z", "+00:00"))
    assert ids(query.list_runs(index, since="2m", now=now)) == ["demo-c", "demo-b"]


def test_sync_reads_only_what_changed_and_forgets_deleted_runs(index: db.Index, store: store_mod.Store) -> None:
    assert index.sync().listed is False  # nothing written since: not even a listing
    rf.save(store, rf.summary("demo-e", minute=5, accuracy=0.99, phase="Running"))
    report = index.sync()
    assert (report.added, report.updated, report.removed) == (1, 0, 0)
    assert query.list_runs(index).runs[0].phase == "Running"
    rf.save(store, rf.summary("demo-e", minute=5, accuracy=0.5))
    assert index.sync().updated == 1
    assert query.list_runs(index).runs[0].phase == "Succeeded"
    os.unlink(store.local_path(layout.summary_rel("demo-a")))
    assert index.sync().removed == 1
    assert ids(query.list_runs(index, sort="test_accuracy")) == ["demo-b", "demo-e", "demo-c"]


def test_rebuild_from_nothing_gives_the_same_answers(index: db.Index) -> None:
    before = query.list_runs(index, sort="test_accuracy", columns=["train.epochs", "test_accuracy"], all_runs=True)
    index.rebuild()
    after = query.list_runs(index, sort="test_accuracy", columns=["train.epochs", "test_accuracy"], all_runs=True)
    assert before == after


def test_a_run_whose_process_died_is_listed_as_lost(store: store_mod.Store, tmp_path: Path) -> None:
    running = rf.summary("demo-z", phase="Running")
    running = running.model_copy(update={"runner": running.runner.model_copy(
        update={"executor": "subprocess", "host": "elsewhere", "pid": 1})})
    rf.save(store, running)
    ix = db.Index(store, str(tmp_path / "i.sqlite"))
    ix.sync()
    assert query.list_runs(ix).runs[0].phase == "Lost"  # its heartbeat stopped long ago


def test_a_unique_part_of_a_run_id_names_the_run(index: db.Index) -> None:
    assert index.resolve("demo-b") == "demo-b" and index.resolve("o-c") == "demo-c"
    with pytest.raises(LookupError, match="several"):
        index.resolve("demo")
    with pytest.raises(LookupError, match="no run"):
        index.resolve("nope")


def test_same_inputs_different_outputs_groups_executions_with_one_key(store: store_mod.Store, tmp_path: Path) -> None:
    rf.save(store, rf.summary("r1", minute=0, outputs={"model": "1" * 64}),
            rf.summary("r2", minute=1, outputs={"model": "2" * 64}),
            rf.summary("r3", minute=2, epochs=99))
    ix = db.Index(store, str(tmp_path / "i.sqlite"))
    ix.sync()
    groups = lookups.same_inputs_different_outputs(ix)
    assert [(g.stage, g.variants, [e.run_id for e in g.executions]) for g in groups] == [("train", 2, ["r1", "r2"])]


def test_downstream_follows_outputs_into_later_runs(store: store_mod.Store, tmp_path: Path) -> None:
    rf.save(store, rf.summary("r1", minute=0, data="1" * 64), rf.summary("r2", minute=1, data="2" * 64, epochs=3))
    ix = db.Index(store, str(tmp_path / "i.sqlite"))
    ix.sync()
    found = lookups.downstream(ix, "1" * 64)
    assert [r.run_id for r in found.runs] == ["r1"]
    assert found.runs[0].stages == ["evaluate", "train"] and "evaluate/report" in found.runs[0].deliverables
    model = ix.conn.execute("SELECT digest FROM io WHERE stage='train' AND role='out' AND name='model' AND run="
                            "(SELECT id FROM runs WHERE run_id='r2')").fetchone()[0]
    assert [r.run_id for r in lookups.downstream(ix, model).runs] == ["r2"]


FILTER_WORDS = ["test_accuracy", "train.epochs", "tag", "owner", "phase", "AND", "OR", "NOT", "in", "is", "missing",
                "(", ")", "=", "!=", ">=", "<", "~", "!~", "'", '"', ",", "0.9", "x", "[", "\\"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(FILTER_WORDS) | st.text(max_size=6), max_size=7).map(" ".join),
                max_size=3),
       st.sampled_from([None, "test_accuracy", "train.epochs:asc", "tag", "x:up", ":", "created"]),
       st.sampled_from([None, "2d", "90s", "1x", "", "-1h"]))
def test_any_filter_sort_and_age_list_runs_or_name_the_bad_flag(index: db.Index, texts: list[str], sort: str | None,
                                                                since: str | None) -> None:
    try:
        query.list_runs(index, filter_texts=texts, sort=sort, since=since)
    except query.QueryError as bad:
        assert bad.flag in ("--filter", "--sort", "--since") and str(bad)
