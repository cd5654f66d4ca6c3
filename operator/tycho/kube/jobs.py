"""Stage Jobs: the batch/v1 Job that runs one stage execution, and the cluster's view of
code, image and store.

Pure builders, called by the Kubernetes executor (``tycho.executors.kube``) for every
execution the engine starts. The invocation inside is the engine's, so the wrapper in
the pod does exactly what it does on a laptop. Secret values never appear here:
credentials reach the pod as ``secretKeyRef`` env entries.

Retries: the Job's ``backoffLimit`` is ``retries.limit`` and the wrapper makes a single
attempt per pod, so every retry is a fresh pod (also after OOM kills, evictions or a lost
node) and Kubernetes applies its own exponential backoff (10s, 20s, 40s, ... capped at 6
minutes); ``retries.backoffSeconds`` only applies to local runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tycho.api import models, problems
from tycho.engine import model
from tycho.kube import naming, podspec
from tycho.planning import cachekey
from tycho.provenance import documents, layout
from tycho.settings import Settings
from tycho.stage import invocation

CONTAINER = "stage"
ENTRYPOINT = ["tycho", "stage-exec"]
STORE_CREDENTIALS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_ENDPOINT_URL", True))
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def store_url(spec: models.Spec, settings: Settings) -> str:
    """The pipeline's store; the operator-wide default replaces the local default URL."""
    if spec.storage.url == models.Storage().url and settings.default_store:
        return settings.default_store
    return layout.resolve_url(spec.storage.url).rstrip("/")


def store_problems(url: str) -> list[problems.Problem]:
    """A store stage pods cannot reach makes the pipeline invalid on a cluster (not half-run)."""
    if url.startswith("file://"):
        return [problems.Problem("spec.storage.url", f"{url} is a local directory; stage pods cannot reach it",
                                   "use an object store URL (s3://BUCKET/PREFIX, gs://...) or have the operator's "
                                   "TYCHO_DEFAULT_STORE replace the local default")]
    return []


def store_secret(spec: models.Spec, settings: Settings) -> str | None:
    return spec.storage.secret_ref.name if spec.storage.secret_ref else (settings.store_secret or None)


def code_identity(spec: models.Spec) -> documents.CodeRef:
    """The code part of a cluster run's keys.

    The operator cannot read the code baked into an image, so it uses ``spec.code.digest``
    (set by ``images/build.sh --pin``). Without it the code is "what the image holds", and
    the image part of the key (its digest, or its reference) stands for it: pin images by
    ``@sha256:`` digest, or a new image pushed under the same tag looks unchanged. Either
    way the wrapper archives the code it ran and records it, so ``tycho reproduce`` works.
    """
    if spec.code.digest:
        return documents.CodeRef(digest=spec.code.digest.removeprefix("sha256:"), source="spec.code.digest")
    return documents.CodeRef(digest=cachekey.digest({"code": "in-image"}), source="image-reference")


def image_ref(stage: models.Stage) -> documents.ImageRef:
    """The image as known before the pod runs: a pinned digest if the reference has one
    (the digest the node actually pulled is recorded later, from the pod's imageID)."""
    _, at, digest = stage.image.partition("@sha256:")
    if at:
        return documents.ImageRef(reference=stage.image, digest=digest, resolved_by="image-reference")
    return documents.ImageRef(reference=stage.image)


def _env(inv: invocation.Invocation, stage: models.Stage, secret: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "TYCHO_INVOCATION", "value": inv.model_dump_json()},
        # The Job's UID, known only once the Job exists: the record's invocationId.
        {"name": "TYCHO_INVOCATION_ID",
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_UID_LABEL}']"}}},
        {"name": "HOME", "value": "/tmp"},
    ]
    if secret:
        for name, optional in STORE_CREDENTIALS:
            ref: dict[str, Any] = {"name": secret, "key": name}
            if optional:
                ref["optional"] = True
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    for var in stage.env:
        if var.value_from is not None:
            source = var.value_from.secret_key_ref
            env.append({"name": var.name, "valueFrom": {"secretKeyRef": {"name": source.name, "key": source.key}}})
    return env


def build_job(*, pipeline: models.ExperimentPipeline, start: model.Start, settings: Settings) -> dict[str, Any]:
    """The batch/v1 Job of one stage execution, owned by the pipeline."""
    meta, stage = pipeline.metadata, start.stage
    inv = start.invocation.model_copy(update={"attempts": 1})  # retries are new pods (backoffLimit)
    labels = naming.stage_labels(meta.name, stage.name, inv.run_id, inv.cache_key)
    volume, mount = podspec.tmp_volume()
    container: dict[str, Any] = {
        "name": CONTAINER, "image": stage.image, "imagePullPolicy": settings.stage_image_pull_policy,
        "command": list(ENTRYPOINT), "workingDir": pipeline.spec.code.workdir,
        "env": _env(inv, stage, store_secret(pipeline.spec, settings)),
        "securityContext": podspec.container_security_context(), "volumeMounts": [mount],
        # The wrapper's last lines (which stage failed and why) become the failure message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    res = podspec.resources(stage, settings)
    if res:
        container["resources"] = res
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "serviceAccountName": stage.service_account_name or settings.stage_service_account,
        "securityContext": podspec.pod_security_context(), "containers": [container], "volumes": [volume],
    }
    if stage.timeout_seconds is not None:
        pod["activeDeadlineSeconds"] = stage.timeout_seconds  # per attempt: each retry is a new pod
    if selector := podspec.node_selector(stage):
        pod["nodeSelector"] = selector
    if tolerations := podspec.tolerations(stage, settings):
        pod["tolerations"] = tolerations
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": start.execution, "namespace": meta.namespace, "labels": labels,
                     "annotations": {naming.ANNOTATION_RUN: inv.run_id, naming.ANNOTATION_KEY: inv.cache_key,
                                     **({naming.ANNOTATION_TRIAL: str(inv.trial)} if inv.trial is not None else {})},
                     "ownerReferences": [naming.owner_reference(meta.name, meta.uid or "")]},
        "spec": {"backoffLimit": stage.retries.limit, "ttlSecondsAfterFinished": settings.job_ttl_seconds,
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }
