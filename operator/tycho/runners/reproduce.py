"""``tycho reproduce RUN_ID``: run a recorded run again, cache ignored, and compare bits.

The manifest and the exact code come from the run summary and the stored code archive,
so the working tree may have moved on. Every stage re-executes (downstream stages read
the *re-derived* upstream outputs, so the whole chain is checked), and each output is
compared with the digest recorded for the original run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tycho.api import validation
from tycho.provenance import code, runs, store as store_mod
from tycho.runners import local, progress, resolve


def reproduce(run_id: str, store_url: str, reporter: progress.Reporter, **kw: Any) -> dict[str, Any]:
    """Re-run ``run_id``; returns per-output comparisons and the new run's summary."""
    store = store_mod.Store(store_url)
    original = runs.load(store, run_id)
    if original.get("runner") == "kubernetes" or not (original.get("code") or {}).get("uri"):
        raise LookupError(
            f"run {run_id} ran on a cluster: its code lives in the stage image "
            f"({original['manifest']['spec']['stages'][0]['image']}), not in the store, so it cannot be "
            "re-run locally; re-apply the pipeline on the cluster with a changed spec.stages[].cache.version "
            "to re-derive its outputs")
    pipeline = validation.check(original["manifest"])
    warnings: list[str] = []
    if original.get("environment") and original["environment"] != resolve.local_environment_digest():
        warnings.append("the Python environment differs from the recorded one; outputs may differ")
    with tempfile.TemporaryDirectory(prefix="tycho-reproduce-") as tmp:
        code_dir = Path(tmp) / "code"
        code.extract(store.get_bytes(original["code"]["digest"]), code_dir)
        opts = local.Options(store_url=store.url, manifest_dir=code_dir, code_dir=code_dir, force=True,
                             reproduces=run_id, **kw)
        summary = local.run(pipeline, opts, reporter)
    outputs: list[dict[str, Any]] = []
    for stage, entry in original["stages"].items():
        new = summary["stages"].get(stage, {})
        for name, digest in sorted(entry.get("outputs", {}).items()):
            got = new.get("outputs", {}).get(name)
            outputs.append({"stage": stage, "output": name, "recorded": digest, "reproduced": got,
                            "identical": got == digest})
    return {"runId": run_id, "reproductionRunId": summary["runId"], "phase": summary["phase"],
            "identical": summary["phase"] == "Succeeded" and all(o["identical"] for o in outputs),
            "outputs": outputs, "warnings": warnings}
