"""The pod side of a stage Job: resources, placement on CPU/GPU nodes, and a locked-down
security context. Pure functions of the stage spec and the operator settings; the Job
builder (``tycho.kube.jobs``) assembles them.
"""

from __future__ import annotations

from typing import Any, Literal

from tycho.api import models
from tycho.settings import Settings

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
RUN_AS_USER = 10001
TMP_VOLUME = "tmp"


def _quantity(value: models.Quantity) -> str:
    return str(value)


def resources(stage: models.Stage, settings: Settings) -> dict[str, Any]:
    """Requests and limits for cpu and memory (the shorthand sets both: Guaranteed QoS, no
    noisy neighbours); GPUs as the extended resource, which Kubernetes only takes in limits."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    names: tuple[Literal["cpu", "memory"], ...] = ("cpu", "memory")
    for name in names:
        request, limit = stage.resources.request(name), stage.resources.limit(name)
        if request is not None:
            requests[name] = _quantity(request)
        if limit is not None:
            limits[name] = _quantity(limit)
    gpu = stage.resources.gpu
    if gpu is not None:
        limits[settings.gpu_resource] = str(gpu.count)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def node_selector(stage: models.Stage) -> dict[str, str]:
    """The stage's own selector, plus the GPU product label when a GPU type is asked for."""
    selector = dict(stage.node_selector)
    gpu = stage.resources.gpu
    if gpu is not None and gpu.type:
        selector[GPU_PRODUCT_LABEL] = gpu.type
    return selector


def tolerations(stage: models.Stage, settings: Settings) -> list[dict[str, Any]]:
    """The stage's tolerations; GPU stages also tolerate the GPU nodes' taint (GPU pools are
    tainted so that CPU work never lands there)."""
    out = [t.model_dump(by_alias=True, exclude_none=True) for t in stage.tolerations]
    if stage.resources.gpu is not None and not any(t.get("key") == settings.gpu_toleration_key for t in out):
        out.append({"key": settings.gpu_toleration_key, "operator": "Exists", "effect": "NoSchedule"})
    return out


def pod_security_context() -> dict[str, Any]:
    """Pod Security Standard "restricted": non-root, default seccomp profile."""
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER, "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    """No privilege escalation, no capabilities, read-only root: stage code writes only to
    /tmp (an emptyDir), which is where the wrapper's work directory lives."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}
