"""Names, labels and owner references of the objects the operator creates.

Everything here is deterministic, so an operator restarted at any moment finds the Jobs it
already created (a Job is named by its execution id: pipeline, stage and cache key, see
``tycho.engine.scheduler.execution_id``) instead of creating them twice. Used by the Job
builder, the watch filters and the tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tycho.api import models

PREFIX = "tycho.dev"
LABEL_PIPELINE = f"{PREFIX}/pipeline"
LABEL_STAGE = f"{PREFIX}/stage"
LABEL_RUN = f"{PREFIX}/run"
LABEL_KEY = f"{PREFIX}/cache-key"
LABEL_NETWORK = f"{PREFIX}/network"
"""On stage pods of stages that declared network: true (the NetworkPolicy lets them out)."""
ANNOTATION_RUN = f"{PREFIX}/run-id"
ANNOTATION_KEY = f"{PREFIX}/cache-key"
ANNOTATION_TRIAL = f"{PREFIX}/trial"
ANNOTATION_INVOCATION = f"{PREFIX}/invocation"
"""On a stage pod: the invocation JSON its containers read (``tycho.kube.jobs``)."""
ANNOTATION_REPRODUCES = f"{PREFIX}/reproduces"
"""On a pipeline: it re-derives this run (cache ignored, nothing adopted); see ``tycho reproduce --on-cluster``."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "tycho", "app.kubernetes.io/component": "stage"}
KEY_LABEL_CHARS = 32  # label values stop at 63 characters; the full key is an annotation
_LABEL_OK = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def ours(marks: Mapping[str, Any] | None) -> dict[str, Any]:
    """The labels or annotations under ``PREFIX`` (the operator reads no others)."""
    return {k: v for k, v in (marks or {}).items() if k.startswith(f"{PREFIX}/")}


def label_value(value: str) -> str:
    """A valid label value: at most 63 characters, alphanumeric at both ends.

    Run ids can exceed 63 characters for long pipeline names; their tail (timestamp and
    random suffix) is the unique part, so that is what is kept.
    """
    value = value[-63:]
    while value and not _LABEL_OK.match(value):
        value = value[1:]
    return value


def stage_labels(pipeline: str, stage: str, run_id: str, key: str) -> dict[str, str]:
    """Labels on stage Jobs and their pods: select by pipeline, stage, run or key prefix."""
    return {
        LABEL_PIPELINE: pipeline,
        LABEL_STAGE: stage,
        LABEL_RUN: label_value(run_id),
        LABEL_KEY: key[:KEY_LABEL_CHARS],
        **MANAGED_BY,
    }


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """The pipeline as controller of a Job: deleting the pipeline garbage-collects its Jobs.

    ``blockOwnerDeletion`` lets foreground deletion of a pipeline wait for its Jobs; with the
    OwnerReferencesPermissionEnforcement admission plugin it needs RBAC ``update`` on
    ``experimentpipelines/finalizers`` (the chart grants it).
    """
    return {"apiVersion": models.API_VERSION, "kind": models.KIND, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when ``obj`` names the pipeline with this uid as an owner."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def object_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an Event about a pipeline names it by."""
    meta = body.get("metadata", {})
    return {"apiVersion": models.API_VERSION, "kind": models.KIND,
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")}}
