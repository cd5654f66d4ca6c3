"""Diffs between runs: what changed, code file by file from stored archives, and why stages ran."""

from __future__ import annotations

from pathlib import Path

from tests.unit.index import runs_fixture as rf
from tycho.provenance import code, documents, layout, store as store_mod
from tycho.reports import diff


def _with_code(store: store_mod.Store, summary: documents.RunSummary, folder: Path) -> documents.RunSummary:
    digest = store.put_bytes(code.archive(folder))
    return summary.model_copy(update={"code": documents.CodeRef(digest=digest, archive=layout.object_rel(digest))})


def test_diff_names_the_changed_param_the_executed_stages_and_metric_deltas(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    a = rf.summary("a", epochs=10, accuracy=0.90)
    b = rf.summary("b", epochs=30, accuracy=0.95)
    b.stages["prepare"] = b.stages["prepare"].model_copy(update={"phase": "Cached", "record": "records/a/prepare.json"})
    b.stages["train"] = b.stages["train"].model_copy(update={"key_components": {
        **(a.stages["train"].key_components or {}), "params": {"epochs": 30, "lr": 0.01}}})
    result = diff.diff(store, a, b)
    sections = {s.name: s for s in result.comparison.sections}
    assert [(r.key, r.values) for r in sections["params"].changed] == [("train.epochs", [10, 30])]
    accuracy = next(r for r in sections["metrics"].rows if r.key == "test_accuracy")
    assert accuracy.changed and abs((accuracy.deltas[1] or 0) - 0.05) < 1e-9
    why = {w.stage: w for w in result.stages}
    assert not why["prepare"].executed and why["prepare"].reason == "cache hit: reused the result of a"
    assert why["train"].executed and why["train"].changed == ["params.epochs: 10 -> 30"]
    assert not [r for r in sections["params"].rows if r.key == "train.lr" and r.changed]


def test_code_diff_is_file_by_file_from_the_stored_archives(tmp_path: Path) -> None:
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, body in ((old, "EPOCHS = 10\n"), (new, "EPOCHS = 30\n")):
        folder.mkdir()
        (folder / "train.py").write_text("import os\n" + body)
        (folder / "same.py").write_text("x = 1\n")
    (new / "extra.py").write_text("print('new')\n")
    a, b = _with_code(store, rf.summary("a"), old), _with_code(store, rf.summary("b"), new)
    files = {f.path: f for f in diff.code_diff(store, a, b)}
    assert set(files) == {"train.py", "extra.py"}
    assert files["extra.py"].status == "added"
    assert "-EPOCHS = 10\n+EPOCHS = 30\n" in files["train.py"].diff
    assert diff.code_diff(store, a, a) == []


def test_compare_lines_up_any_number_of_runs(tmp_path: Path) -> None:
    runs = [rf.summary(f"r{i}", epochs=i, accuracy=0.5 + i / 10) for i in range(5)]
    comparison = diff.compare(runs)
    assert comparison.runs == [f"r{i}" for i in range(5)]
    epochs = next(r for s in comparison.sections for r in s.rows if r.key == "train.epochs")
    assert epochs.values == [0, 1, 2, 3, 4] and epochs.changed
