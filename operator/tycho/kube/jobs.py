"""Stage Jobs: the batch/v1 Job that runs one stage execution, and the cluster's view of its
store.

Pure builders, called by the Kubernetes executor (``tycho.executors.kube``) for every
execution the engine starts. The invocation inside is the engine's, so the wrapper in
the pod does exactly what it does on a laptop, in three containers so that user code
never shares a process tree, an environment or a file system with store credentials:

- init container ``fetch`` (store credentials): inputs and params into the ``in`` volume;
- init container ``stage`` (the user's code, no store credentials): reads ``in``
  read-only, writes ``out``; only the env the stage declares (its Secrets included);
- container ``publish`` (store credentials, the signing key): hashes ``out``, stores
  outputs, signs and writes the record.

The invocation is in the pod's annotation ``tycho.dev/invocation`` once, and each container
reads it from a downward API file: a Job is read by every watch of Jobs (the operator's
included) on each of its status changes, so four copies in four containers' env would
quadruple the bytes every watch event carries.

Init containers run one after another and a failing one fails the pod (so the Job
retries it), which gives this order on any Kubernetes version without sidecars. Secret
values never appear here: they reach the pod as ``secretKeyRef`` env entries.

Retries: the Job's ``backoffLimit`` is ``retries.limit`` and the wrapper makes a single
attempt per pod, so every retry is a fresh pod (also after OOM kills, evictions or a lost
node) and Kubernetes applies its own exponential backoff (10s, 20s, 40s, ... capped at 6
minutes); ``retries.backoffSeconds`` only applies to local runs.
"""

from __future__ import annotations

from typing import Any

from tycho.api import models, problems, references
from tycho.engine import model
from tycho.kube import naming, podspec
from tycho.provenance import layout
from tycho.settings import Settings

CONTAINER = "stage"
"""The container that runs the user's code (an init container)."""
FETCH, PUBLISH, LIVE = "fetch", "publish", "live"
ENTRYPOINT = ["tycho", "stage-exec"]
WORK = "/stage"
SIGNING_DIR = "/var/run/tycho/signing"
SIGNING_FILE = "signing.key"
INVOCATION_DIR = "/etc/tycho"
INVOCATION_FILE = "invocation.json"
STORE_CREDENTIALS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_ENDPOINT_URL", True))
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def store_url(spec: models.Spec, settings: Settings) -> str:
    """The pipeline's store; the operator-wide default replaces the local default URL."""
    if spec.storage.url == references.DEFAULT_STORE_URL and settings.default_store:
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


def _base_env() -> list[dict[str, Any]]:
    return [
        # The Job's UID, known only once the Job exists: the record's invocationId.
        {"name": "TYCHO_INVOCATION_ID",
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_UID_LABEL}']"}}},
        {"name": "TYCHO_WORK", "value": WORK},
        {"name": "HOME", "value": "/tmp"},
    ]


def _store_env(secret: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if secret:
        for name, optional in STORE_CREDENTIALS:
            ref: dict[str, Any] = {"name": secret, "key": name}
            if optional:
                ref["optional"] = True
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _stage_env(stage: models.Stage) -> list[dict[str, Any]]:
    """The user's container: the stage's own Secrets, and the node it runs on (a recorded fact)."""
    env: list[dict[str, Any]] = [{"name": "TYCHO_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    for var in stage.env:
        if var.value_from is not None:
            source = var.value_from.secret_key_ref
            env.append({"name": var.name, "valueFrom": {"secretKeyRef": {"name": source.name, "key": source.key}}})
    return env


def _volumes() -> list[dict[str, Any]]:
    invocation_file = {"path": INVOCATION_FILE,
                       "fieldRef": {"fieldPath": f"metadata.annotations['{naming.ANNOTATION_INVOCATION}']"}}
    return [*({"name": n, "emptyDir": {}} for n in ("in", "out", "state", "tmp", "io-tmp")),
            {"name": "invocation", "downwardAPI": {"items": [invocation_file], "defaultMode": 0o444}}]


def _mount(name: str, path: str, read_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        out["readOnly"] = True
    return out


def _containers(stage: models.Stage, settings: Settings, secret: str | None,
                image: str, workdir: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(init containers, containers) of a stage pod."""
    def container(name: str, phase: str, env: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"name": name, "image": image, "imagePullPolicy": settings.stage_image_pull_policy,
                "command": [*ENTRYPOINT, "--phase", phase, "--invocation", f"{INVOCATION_DIR}/{INVOCATION_FILE}"],
                "workingDir": workdir, "env": _base_env() + env,
                "securityContext": podspec.container_security_context(),
                "volumeMounts": [*mounts, _mount("invocation", INVOCATION_DIR, read_only=True)],
                # The wrapper's last lines (which stage failed and why) become the failure message.
                "terminationMessagePolicy": "FallbackToLogsOnError"}

    io_tmp = _mount("io-tmp", "/tmp")
    fetch = container(FETCH, "fetch", _store_env(secret),
                      [_mount("in", f"{WORK}/in"), _mount("state", f"{WORK}/state"), io_tmp])
    user = container(CONTAINER, "run", _stage_env(stage),
                     [_mount("in", f"{WORK}/in", read_only=True), _mount("out", f"{WORK}/out"), _mount("tmp", "/tmp")])
    res = podspec.resources(stage, settings)
    if res:
        user["resources"] = res
    publish_env = _store_env(secret)
    publish_mounts = [_mount("out", f"{WORK}/out", read_only=True), _mount("state", f"{WORK}/state", read_only=True),
                      io_tmp]
    if settings.signing_secret:
        publish_env.append({"name": "TYCHO_SIGNING_KEY", "value": f"{SIGNING_DIR}/{SIGNING_FILE}"})
        publish_mounts.append(_mount("signing", SIGNING_DIR, read_only=True))
    publish = container(PUBLISH, "publish", publish_env, publish_mounts)
    # A native sidecar (an init container that keeps running): publishes the running stage's
    # metrics for the board; it holds store credentials, so it is not the user's container.
    live = container(LIVE, "live", _store_env(secret), [_mount("out", f"{WORK}/out", read_only=True), io_tmp])
    live["restartPolicy"] = "Always"
    live["resources"] = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    return [fetch, live, user], [publish]


def build_job(*, pipeline: models.ExperimentPipeline, start: model.Start, settings: Settings) -> dict[str, Any]:
    """The batch/v1 Job of one stage execution, owned by the pipeline."""
    meta, stage = pipeline.metadata, start.stage
    inv = start.invocation.model_copy(update={"attempts": 1})  # retries are new pods (backoffLimit)
    labels = naming.stage_labels(meta.name, stage.name, inv.run_id, inv.cache_key)
    init, main = _containers(stage, settings, store_secret(pipeline.spec, settings), stage.image,
                             pipeline.spec.code.workdir)
    volumes = _volumes()
    if settings.signing_secret:
        volumes.append({"name": "signing", "secret": {"secretName": settings.signing_secret, "defaultMode": 0o440}})
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "serviceAccountName": stage.service_account_name or settings.stage_service_account,
        "securityContext": podspec.pod_security_context(), "initContainers": init, "containers": main,
        "volumes": volumes,
    }
    if stage.network:
        labels = {**labels, naming.LABEL_NETWORK: "true"}
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
                 "template": {"metadata": {"labels": labels,
                                           "annotations": {naming.ANNOTATION_INVOCATION: inv.model_dump_json()}},
                              "spec": pod}},
    }
