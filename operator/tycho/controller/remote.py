"""``tycho reproduce RUN --on-cluster``: re-run a recorded run as Jobs and compare bits.

Creates a new ExperimentPipeline from the run's recorded manifest, annotated
``tycho.dev/reproduces: RUN`` (the operator then ignores the cache and adopts nothing),
waits for it to finish, and compares its outputs with the recorded ones
(``tycho.runners.reproduce.compare``). The pipeline object is left in place, so its
status, events and Jobs can be inspected; delete it when done.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable

from tycho.kube import client, naming
from tycho.provenance import documents, runs, store as store_mod
from tycho.runners import reproduce as reproduce_mod

ANNOTATION = naming.ANNOTATION_REPRODUCES
POLL_SECONDS = 2.0


def manifest(original: documents.RunSummary, namespace: str) -> dict[str, object]:
    """The reproduction's manifest: the recorded spec under a new name."""
    name = f"{original.pipeline[:40]}-r{secrets.token_hex(2)}"
    doc = copy.deepcopy(original.manifest)
    doc["metadata"] = {"name": name, "namespace": namespace, "annotations": {ANNOTATION: original.run_id}}
    doc.pop("status", None)
    return doc


def reproduce(run_id: str, store_url: str, *, namespace: str | None, timeout: float,
              log: Callable[[str], None]) -> reproduce_mod.Report:
    store = store_mod.Store(store_url)
    original = runs.load(store, run_id)
    ns = namespace or original.runner.namespace or "default"
    kube = client.Kube(client.api_client())
    doc = kube.create_pipeline(manifest(original, ns))
    name = doc["metadata"]["name"]
    log(f"created ExperimentPipeline {ns}/{name} reproducing {run_id}; waiting for it to finish")
    deadline = time.monotonic() + timeout
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        body = kube.get_pipeline(ns, name) or {}
        status = body.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Invalid"):
            break
        time.sleep(POLL_SECONDS)
    else:
        raise TimeoutError(f"{ns}/{name} did not finish within {timeout:g}s (phase {status.get('phase')})")
    if status.get("phase") == "Invalid" or not status.get("runId"):
        raise LookupError(f"{ns}/{name} did not run: {status.get('message')}")
    new = runs.load(store, str(status["runId"]))
    return reproduce_mod.compare(original, new, [], store, reproduce_mod.check_original(store, original))
