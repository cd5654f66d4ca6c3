"""``tycho verify`` and the cache lookup catch every edit of a stored run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.workspace import Workspace
from tycho.provenance import audit, layout, store as store_mod
from tycho.reports import lineage, verify


def files_of(root: Path) -> list[Path]:
    """Every stored file that has a byte to flip (the empty object has none)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size)


def flip(path: Path, at: int) -> bytes:
    """Flip one bit of one byte; returns the original bytes."""
    data = path.read_bytes()
    path.chmod(0o644)
    changed = bytearray(data)
    changed[at % len(data)] ^= 0x01
    path.write_bytes(bytes(changed))
    return data


def keys(ws: Workspace) -> audit.Keys:
    return audit.file_keys([ws.root / "signing.key"])


def test_a_fresh_store_verifies(ws: Workspace) -> None:
    summary = ws.run()
    store = store_mod.Store(ws.store_url)
    report = verify.verify(store, None, keys(ws))
    assert report.problems == [] and report.checked["records"] == 3 and report.checked["objects"] >= 9
    assert verify.verify(store, [summary.run_id], keys(ws)).problems == []


def test_flipping_any_byte_of_any_stored_file_is_named(ws: Workspace) -> None:
    ws.run()
    root = ws.root / "store"
    store = store_mod.Store(ws.store_url)
    files = files_of(root)
    assert len(files) > 20
    for i, path in enumerate(files):
        rel = path.relative_to(root).as_posix()
        for at in (0, len(path.read_bytes()) // 2 + i):  # the first byte, and one inside
            original = flip(path, at)
            try:
                problems = verify.verify(store, None, keys(ws)).problems
            finally:
                path.write_bytes(original)
            assert any(p.startswith(rel + ":") or f" {rel}" in p for p in problems), (rel, at, problems)
    assert verify.verify(store, None, keys(ws)).problems == []


def test_the_cli_exits_1_and_names_the_file(ws: Workspace) -> None:
    summary = ws.run()
    record = ws.root / "store" / (summary.stages["total"].record or "")
    flip(record, 40)
    env = {**os.environ, "TYCHO_SIGNING_KEY": str(ws.root / "signing.key")}
    proc = subprocess.run([sys.executable, "-m", "tycho", "verify", summary.run_id, "--store", ws.store_url, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert any(p.startswith(f"{summary.stages['total'].record}:") for p in report["problems"]), report["problems"]


def test_a_record_signed_by_an_untrusted_key_fails_when_the_key_is_pinned(ws: Workspace, tmp_path: Path) -> None:
    ws.run()
    from tycho.provenance import signing

    other = signing.ensure_key(tmp_path / "other.key")
    problems = verify.verify(store_mod.Store(ws.store_url), None, audit.file_keys([other])).problems
    assert problems and all("does not verify" in p or "sealed" in p or "seal" in p for p in problems), problems


def test_a_poisoned_cache_entry_is_refused_and_the_stage_executes(ws: Workspace) -> None:
    first = ws.run()
    other = ws.run(ws.pipeline(**{"generate.count": "3"}))
    store = store_mod.Store(ws.store_url)
    # Point generate's entry (count=5) at the outputs and record of the count=3 execution.
    key = first.stages["generate"].cache_key or ""
    path = store.local_path(layout.cache_rel(key))
    entry = json.loads(path.read_text())
    entry.update(outputs=other.stages["generate"].outputs, record=other.stages["generate"].record)
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    again = ws.run()
    assert again.stages["generate"].phase == "Succeeded"  # executed, not served from the poisoned entry
    assert again.stages["generate"].outputs == first.stages["generate"].outputs
    assert ws.object(again.stages["report"].outputs["report"]).read_text() == "total=20.0\nnotes=hello\n"


def test_an_edited_record_is_not_a_hit_and_lineage_refuses_it(ws: Workspace) -> None:
    first = ws.run()
    rel = first.stages["total"].record or ""
    path = ws.root / "store" / rel
    doc = json.loads(path.read_text())
    doc["predicate"]["buildDefinition"]["externalParameters"]["params"]["fail_marker"] = "edited"
    path.chmod(0o644)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    with pytest.raises(LookupError, match=rel):
        lineage.walk(store_mod.Store(ws.store_url), f"{first.run_id}/report/report", keys(ws))
    again = ws.run()
    assert again.stages["total"].phase == "Succeeded" and again.stages["generate"].phase == "Cached"
