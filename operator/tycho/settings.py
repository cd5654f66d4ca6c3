"""Operator settings: one documented object read from environment variables.

The Helm chart's values map one to one onto these variables (charts/tycho/values.yaml),
so what an admin sets in values is what the operator reads here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """TYCHO_NAMESPACES: comma-separated namespaces to watch; empty = cluster-wide."""
    metrics_port: int = 8080
    """TYCHO_METRICS_PORT: port of the Prometheus /metrics endpoint."""
    health_port: int = 8081
    """TYCHO_HEALTH_PORT: port of kopf's liveness endpoint (/healthz)."""
    stage_service_account: str = "default"
    """TYCHO_STAGE_SERVICE_ACCOUNT: ServiceAccount of stage pods (needs no API access)."""
    default_store: str = ""
    """TYCHO_DEFAULT_STORE: store URL for pipelines whose spec.storage.url is the local default."""
    store_secret: str = ""
    """TYCHO_STORE_SECRET: Secret with store credentials when a pipeline names none."""
    stage_image_pull_policy: str = "IfNotPresent"
    """TYCHO_STAGE_IMAGE_PULL_POLICY: imagePullPolicy of stage containers."""
    gpu_resource: str = "nvidia.com/gpu"
    """TYCHO_GPU_RESOURCE: extended resource name of GPUs."""
    gpu_toleration_key: str = "nvidia.com/gpu"
    """TYCHO_GPU_TOLERATION_KEY: taint key GPU nodes carry; GPU stages tolerate it by default."""
    job_ttl_seconds: int = 86400
    """TYCHO_JOB_TTL_SECONDS: ttlSecondsAfterFinished of stage Jobs (records outlive them)."""
    signing_secret: str = ""
    """TYCHO_SIGNING_SECRET: Secret with the Ed25519 key (PEM, key ``signing.key``) that signs
    records; mounted only into each stage pod's publishing container. Empty: records are
    unsigned, so no cache entry verifies and nothing is a cache hit."""
    allowed_registries: tuple[str, ...] = ()
    """TYCHO_ALLOWED_REGISTRIES: comma-separated image prefixes stage images must start with
    (e.g. ``ghcr.io/acme/``); empty = any registry."""
    require_digests: bool = False
    """TYCHO_REQUIRE_DIGESTS: stage images must be pinned by ``@sha256:`` digest."""
    allowed_secrets: tuple[str, ...] = ()
    """TYCHO_ALLOWED_SECRETS: Secret names pipelines may use (storage.secretRef, env valueFrom); empty = any."""
    allowed_toleration_keys: tuple[str, ...] = ()
    """TYCHO_ALLOWED_TOLERATION_KEYS: taint keys stages may tolerate; empty = any."""
    allowed_node_selector_keys: tuple[str, ...] = ()
    """TYCHO_ALLOWED_NODE_SELECTOR_KEYS: node label keys stages may select on; empty = any."""
    allowed_namespaces: tuple[str, ...] = ()
    """TYCHO_ALLOWED_NAMESPACES: namespaces whose pipelines may run; empty = any."""
    peering: str = ""
    """TYCHO_PEERING: kopf peering name for an active/standby pair; empty = standalone."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field from ``TYCHO_<FIELD>`` when set; the defaults above otherwise."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"TYCHO_{field.name.upper()}")
            if raw is None:
                continue
            if isinstance(field.default, tuple):
                values[field.name] = tuple(n.strip() for n in raw.split(",") if n.strip())
            elif isinstance(field.default, bool):
                values[field.name] = raw.strip().lower() in ("1", "true", "yes")
            elif isinstance(field.default, int):
                values[field.name] = int(raw)
            else:
                values[field.name] = raw
        return cls(**values)
