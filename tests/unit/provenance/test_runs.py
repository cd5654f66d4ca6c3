"""Run summaries as the store holds them: what is saved loads back equal, and the digest
``save`` returns (what a seal names) is the digest of the stored bytes."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from tycho.provenance import documents, layout, runs, signing, store as store_mod


def _summary() -> documents.RunSummary:
    return documents.RunSummary(
        run_id="toy-20260101-000000-abcd", pipeline="toy", created_at="2026-01-01T00:00:00Z", store="file:///s",
        phase="Succeeded", finished_at="2026-01-01T00:01:00Z",
        runner=documents.Runner(executor="subprocess", host="h", pid=1),
        stages={"train": documents.StageResult(name="train", phase="Succeeded", metrics={
            "loss": math.nan, "best": math.inf, "accuracy": 0.5}, key_components={"params": {"b": 1, "a": [1, 2]}})})


def test_a_saved_summary_loads_back_equal_even_with_metrics_that_are_not_finite(tmp_path: Path) -> None:
    store, summary = store_mod.Store(f"file://{tmp_path}"), _summary()
    digest = runs.save(store, summary)
    stored = store.read_bytes(layout.summary_rel(summary.run_id))
    assert digest == hashlib.sha256(stored).hexdigest() == hashlib.sha256(runs.encode(summary)).hexdigest()
    loaded = runs.load(store, summary.run_id)
    metrics = loaded.stages["train"].metrics
    assert math.isnan(metrics["loss"]) and metrics["best"] == math.inf and metrics["accuracy"] == 0.5
    assert loaded.model_copy(update={"stages": {}}) == summary.model_copy(update={"stages": {}})
    assert loaded.stages["train"].key_components == {"params": {"b": 1, "a": [1, 2]}}
    assert stored.startswith(b'{\n  "format": "tycho.dev/run/v1",\n') and stored.endswith(b"}\n")


def test_a_summary_written_in_an_older_encoding_is_sealed_by_the_bytes_stored() -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        store, summary = store_mod.Store(f"file://{tmp}"), _summary()
        older = (json.dumps(summary.dump(), indent=2, sort_keys=True) + "\n").encode()  # how summaries were written
        store.write_bytes(layout.summary_rel(summary.run_id), older)
        key = ed25519.Ed25519PrivateKey.generate()
        runs.seal(store, summary, key)  # an operator that died between the summary and its seal
        (envelope,) = signing.parse_bundle(store.read_bytes(layout.run_attestation_rel(summary.run_id)))
        statement = json.loads(signing.payload_of(envelope))
        assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(older).hexdigest()


def test_a_string_no_encoder_can_write_as_utf8_is_stored_escaped() -> None:
    summary = _summary().model_copy(update={"message": "bad \udc80 byte"})
    data = runs.encode(summary)
    assert json.loads(data)["message"] == "bad \udc80 byte"
