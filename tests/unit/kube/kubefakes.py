"""Fakes for the kube unit tests: the toy pipeline as the API server would hand it to the
operator, fake Jobs in any state, and a Probe answering from dicts."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tycho.api import models, validation
from tycho.kube import step
from tycho.planning import plan
from tycho.settings import Settings

TOY = Path(__file__).resolve().parents[2] / "fixtures" / "toy" / "toy.yaml"
NOTES_URL = "s3://data/notes.txt"
NOTES_SHA = "a" * 64
STORE = "s3://tycho/store"
NOW = "2025-01-01T00:00:00.000Z"


def toy_doc(**spec_overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(TOY.read_text().replace("NOTES_URL", NOTES_URL))
    for stage in doc["spec"]["stages"]:
        for inp in stage.get("inputs", []):
            if inp.get("url") == NOTES_URL:
                inp["sha256"] = NOTES_SHA
    doc["metadata"].update(namespace="ns1", uid="uid-1", generation=1)
    doc["spec"]["storage"] = {"url": STORE, "secretRef": {"name": "store-creds"}}
    doc["spec"].update(spec_overrides)
    return doc


def toy(**spec_overrides: Any) -> models.ExperimentPipeline:
    return validation.check(toy_doc(**spec_overrides))


def finish(job: Mapping[str, Any], phase: str, *, failed: int = 0, reason: str = "BackoffLimitExceeded",
           message: str = "Job has reached the specified backoff limit") -> dict[str, Any]:
    """A copy of a built Job as the API server reports it in ``phase`` (Running/Succeeded/Failed)."""
    out = copy.deepcopy(dict(job))
    out["metadata"]["uid"] = "job-uid-" + out["metadata"]["name"]
    out["metadata"]["creationTimestamp"] = "2025-01-01T00:00:01Z"
    status: dict[str, Any] = {"startTime": "2025-01-01T00:00:02Z", "failed": failed}
    if phase == "Running":
        status["active"] = 1
    elif phase == "Succeeded":
        status.update(succeeded=1, completionTime="2025-01-01T00:01:00Z",
                      conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T00:01:00Z"}])
    elif phase == "Failed":
        status["conditions"] = [{"type": "Failed", "status": "True", "reason": reason, "message": message,
                                 "lastTransitionTime": "2025-01-01T00:02:00Z"}]
    out["status"] = status
    return out


def entry(key: str, outputs: dict[str, str], metrics: dict[str, float] | None = None) -> plan.CacheEntry:
    return plan.CacheEntry(key=key, outputs=outputs, record=f"{STORE}/records/r/{key[:6]}.json", metrics=metrics or {})


class FakeProbe:
    def __init__(self, hits: dict[str, plan.CacheEntry] | None = None,
                 produced: dict[str, plan.CacheEntry] | None = None,
                 pods: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.hits, self.made, self.pod_map = hits or {}, produced or {}, pods or {}
        self.lookups: list[str] = []

    def lookup(self, key: str) -> plan.CacheEntry | None:
        self.lookups.append(key)
        return self.hits.get(key)

    def produced(self, key: str) -> plan.CacheEntry | None:
        return self.made.get(key)

    def pods(self, job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return list(self.pod_map.get(job["metadata"]["name"], []))


def world(pipeline: models.ExperimentPipeline, *, prior: models.Status | None = None,
          jobs: Mapping[str, Mapping[str, Any]] | None = None, run_id: str = "toy-20250101-000000-abcd",
          settings: Settings | None = None) -> step.World:
    return step.World(pipeline=pipeline, prior=prior or models.Status(run_id=run_id), run_id=run_id, store=STORE,
                      external={NOTES_URL: NOTES_SHA}, jobs=dict(jobs or {}), settings=settings or Settings(), now=NOW)

