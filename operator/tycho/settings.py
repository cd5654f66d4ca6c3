"""Operator settings: one documented object read from environment variables.

The Helm chart's values map one to one onto these variables (charts/tycho/values.yaml),
so what an admin sets in values is what the operator reads here. Each field is
``TYCHO_<FIELD>``; pydantic parses and checks the values (``on``/``true``/``1`` are true,
a port is 1 to 65535, lists are comma-separated), and a value it refuses stops the
operator with one line per variable naming the fix, before it watches anything.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from tycho.api import grammar, problems, references

PREFIX = "TYCHO_"


def _names(value: Any) -> Any:
    """A comma-separated list, as a Deployment's env carries it."""
    if isinstance(value, str):
        return tuple(n.strip() for n in value.split(",") if n.strip())
    return value


Names = Annotated[tuple[str, ...], pydantic.BeforeValidator(_names)]
Port = Annotated[int, pydantic.Field(ge=1, le=65535)]


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    namespaces: Names = ()
    """TYCHO_NAMESPACES: comma-separated namespaces to watch; empty = cluster-wide."""
    metrics_port: Port = 8080
    """TYCHO_METRICS_PORT: port of the Prometheus /metrics endpoint."""
    health_port: Port = 8081
    """TYCHO_HEALTH_PORT: port of kopf's liveness endpoint (/healthz)."""
    stage_service_account: str = "default"
    """TYCHO_STAGE_SERVICE_ACCOUNT: ServiceAccount of stage pods (needs no API access)."""
    default_store: str = ""
    """TYCHO_DEFAULT_STORE: store URL for pipelines whose spec.storage.url is the local default."""
    store_secret: str = ""
    """TYCHO_STORE_SECRET: Secret with store credentials when a pipeline names none."""
    stage_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """TYCHO_STAGE_IMAGE_PULL_POLICY: imagePullPolicy of stage containers."""
    gpu_resource: str = "nvidia.com/gpu"
    """TYCHO_GPU_RESOURCE: extended resource name of GPUs."""
    gpu_toleration_key: str = "nvidia.com/gpu"
    """TYCHO_GPU_TOLERATION_KEY: taint key GPU nodes carry; GPU stages tolerate it by default."""
    job_ttl_seconds: int = pydantic.Field(default=86400, ge=0, le=2**31 - 1)
    """TYCHO_JOB_TTL_SECONDS: ttlSecondsAfterFinished of stage Jobs (records outlive them)."""
    signing_secret: str = ""
    """TYCHO_SIGNING_SECRET: Secret with the Ed25519 key (PEM, key ``signing.key``) that signs
    records; mounted only into each stage pod's publishing container. Empty: records are
    unsigned, so no cache entry verifies and nothing is a cache hit."""
    allowed_registries: Names = ()
    """TYCHO_ALLOWED_REGISTRIES: comma-separated image prefixes stage images must start with
    (e.g. ``ghcr.io/acme/``); empty = any registry."""
    require_digests: bool = False
    """TYCHO_REQUIRE_DIGESTS: stage images must be pinned by ``@sha256:`` digest."""
    allowed_secrets: Names = ()
    """TYCHO_ALLOWED_SECRETS: Secret names pipelines may use (storage.secretRef, env valueFrom); empty = any."""
    allowed_toleration_keys: Names = ()
    """TYCHO_ALLOWED_TOLERATION_KEYS: taint keys stages may tolerate; empty = any."""
    allowed_node_selector_keys: Names = ()
    """TYCHO_ALLOWED_NODE_SELECTOR_KEYS: node label keys stages may select on; empty = any."""
    allowed_namespaces: Names = ()
    """TYCHO_ALLOWED_NAMESPACES: namespaces whose pipelines may run; empty = any."""
    peering: str = ""
    """TYCHO_PEERING: kopf peering name for an active/standby pair; empty = standalone."""

    @pydantic.field_validator("stage_service_account")
    @classmethod
    def _account_name(cls, name: str) -> str:
        if len(name) > 253 or not grammar.regex(grammar.DNS_SUBDOMAIN).match(name):
            raise ValueError("not a ServiceAccount name: lowercase letters, digits, '-' and '.'")
        return name

    @pydantic.field_validator("default_store")
    @classmethod
    def _servable_store(cls, url: str) -> str:
        found = list(references.url(url, f"{PREFIX}DEFAULT_STORE", references.STORE_SCHEMES)) if url else []
        if found:
            raise ValueError("; ".join(f"{what} ({fix})" for _, what, fix in found))
        return url

    @pydantic.model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.metrics_port == self.health_port:
            raise ValueError(f"TYCHO_METRICS_PORT and TYCHO_HEALTH_PORT are both {self.metrics_port}: give them "
                             "different ports")
        return self

    @classmethod
    def unknown(cls, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """``TYCHO_*`` variables Tycho does not read (a typo?), each with the closest known name."""
        env = os.environ if env is None else env
        known = {*cls.variables(), *OTHER_VARIABLES}
        return {name: next(iter(difflib.get_close_matches(name, known, n=1)), None)
                for name in env if name.startswith(PREFIX) and name not in known}

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name by the environment variable that sets it."""
        return {f"{PREFIX}{name.upper()}": name for name in cls.model_fields}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field from ``TYCHO_<FIELD>`` when set; the defaults above otherwise. Raises
        ``problems.InvalidInput`` naming every variable whose value is refused."""
        env = os.environ if env is None else env
        given = {field: raw for var, field in cls.variables().items() if (raw := env.get(var)) is not None}
        try:
            return cls.model_validate(given)
        except pydantic.ValidationError as bad:
            raise problems.InvalidInput([_problem(e) for e in bad.errors()]) from None


def _problem(error: Any) -> problems.Problem:
    field = str(error["loc"][0]) if error["loc"] else "METRICS_PORT"  # the one check across fields
    raw = error.get("input")
    shown = f"{raw!r}: " if isinstance(raw, str) else ""
    return problems.Problem(f"{PREFIX}{field.upper()}", f"{shown}{error['msg']}",
                            "set a valid value or unset it (tycho.settings documents each variable)")


# ---- what a local command or a stage process reads ----------------------------------------
# A few variables the CLI and the stage wrapper read where they are used (the CLI's quick
# commands import no pydantic); each is read by one function here, which names the
# variable and the fix when its value is refused.

OTHER_VARIABLES = ("TYCHO_STORE", "TYCHO_SIGNING_KEY", "TYCHO_TRUSTED_KEYS", "TYCHO_GRACE_SECONDS", "TYCHO_INDEX_DIR",
                   "TYCHO_CONTAINER_ENGINE", "TYCHO_S3_ENDPOINT", "TYCHO_CODE_DIR", "TYCHO_INVOCATION",
                   "TYCHO_INVOCATION_ID", "TYCHO_WORK", "TYCHO_NODE_NAME", "TYCHO_IMAGE_SBOM")
"""The variables a command or a stage process reads besides the operator's settings."""
GRACE_SECONDS = f"{PREFIX}GRACE_SECONDS"
"""Seconds a stopped stage gets between SIGTERM and SIGKILL (default 10)."""
TRUSTED_KEYS = f"{PREFIX}TRUSTED_KEYS"
"""Comma-separated PEM files of public keys whose signatures ``verify`` trusts."""


def grace_seconds(env: Mapping[str, str] | None = None) -> float:
    raw = (os.environ if env is None else env).get(GRACE_SECONDS, "").strip()
    if not raw:
        return 10.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise problems.InvalidInput([problems.Problem(GRACE_SECONDS, f"{raw!r} is not a number of seconds",
                                                      "give seconds between 0 and 86400, e.g. 10, or unset it")])
    return value


def trusted_key_files(env: Mapping[str, str] | None = None) -> list[str]:
    paths = [p.strip() for p in (os.environ if env is None else env).get(TRUSTED_KEYS, "").split(",") if p.strip()]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise problems.InvalidInput([problems.Problem(TRUSTED_KEYS, f"no such file: {p}",
                                                      "list PEM files of public keys, separated by commas")
                                     for p in missing])
    return paths
