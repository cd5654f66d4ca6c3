"""Fakes for the kube unit tests: the toy pipeline as the API server would hand it to the
operator, fake Jobs in any state, and what the engine asks the executor to start."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tycho.api import models, validation
from tycho.engine import identity, model, scheduler
from tycho.kube import naming
from tycho.stage import invocation

TOY = Path(__file__).resolve().parents[2] / "fixtures" / "toy" / "toy.yaml"
NOTES_URL = "s3://data/notes.txt"
NOTES_SHA = "a" * 64
STORE = "s3://tycho/store"
NOW = "2025-01-01T00:00:00.000Z"
RUN = "toy-g1-abcdef"


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


def invocation_of(job: Mapping[str, Any]) -> invocation.Invocation:
    """The invocation a Job carries (what the wrapper in its pod will read)."""
    raw = job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION]
    return invocation.Invocation.model_validate(json.loads(raw))


def start(pipeline: models.ExperimentPipeline, stage: str, key: str, run_id: str = RUN,
          input_digest: str = "b" * 64) -> model.Start:
    """What the engine asks the Kubernetes executor to start for ``stage``."""
    st = next(s for s in pipeline.spec.stages if s.name == stage)
    inv = invocation.build(
        stage=st, pipeline={"name": pipeline.metadata.name, "uid": pipeline.metadata.uid, "generation": 1},
        run_id=run_id, store_url=STORE, image=identity.image(st)[0], code=identity.code(pipeline.spec),
        workdir=pipeline.spec.code.workdir, cache_key=key, input_digests={i.name: input_digest for i in st.inputs},
        producers={}, input_types={}, executor="kubernetes")
    return model.Start(execution=scheduler.execution_id(pipeline.metadata.name, stage, key), stage=st, invocation=inv)
