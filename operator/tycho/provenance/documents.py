"""The typed documents the store holds, and their parts: run summaries and stage results,
cache entries, image and code references.

Pure (no I/O): the engine decides over these types, executors report them, and
``tycho.provenance.runs`` and ``tycho.provenance.cache`` read and write them. One schema
for runs on this machine and on a cluster (format ``tycho.dev/run/v1``); summaries
written before the format existed still load (``_upgrade``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

from tycho.api import phases
from tycho.provenance import layout

CodeSource = Literal["archive", "spec.code.digest", "image-reference"]


class Ref(pydantic.BaseModel):
    """camelCase on the wire, like the API types; unknown fields rejected."""

    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True,
                                       extra="forbid")


class ImageRef(Ref):
    reference: str
    """The image as the manifest names it (tag or @sha256 digest)."""
    digest: str | None = None
    """sha256 hex of the image, when known (pinned reference, container engine, node's imageID)."""
    resolved_by: str | None = None
    """Who reported the digest: image-reference, podman, docker, kubelet, local-environment."""


class CodeRef(Ref):
    digest: str
    """The code part of every cache key: sha256 of the deterministic code archive, or the
    image build's declared digest (spec.code.digest)."""
    source: CodeSource = "archive"
    """Where the digest comes from."""
    archive: str | None = None
    """Store path of the code archive (objects/sha256/HEX), so reproduce can run the exact code."""
    commit: str | None = None
    """git commit of the checkout the code came from."""
    dirty: bool | None = None
    """Whether the code folder had uncommitted changes."""


class CacheEntry(pydantic.BaseModel):
    """For a cache key, the record and output digests a stage execution made (``cache/<key>.json``)."""

    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True,
                                       extra="ignore", frozen=True)

    key: str
    record: str
    """Store path of the record of the execution that made the outputs."""
    outputs: dict[str, str]
    """Output name -> sha256 (of the file, or of the tree for a directory output)."""
    directories: list[str] = []
    """Outputs that are directories (stored as trees)."""
    metrics: dict[str, float] = {}
    environment: dict[str, str] | None = None
    """Python distributions (name -> version) the stage's processes imported, for runs
    whose image identity is the local environment: a hit needs the same versions."""
    curve: dict[int, float] | None = None
    """A sweep trial's objective metric by step (what later batches' early stopping reads)."""
    stopped: int | None = None
    """A sweep trial stopped early at this step (it kept only its metrics log)."""
    checks: list[Check] = []
    """The checks the stage reported (warnings: a stage whose check failed records nothing)."""

    @pydantic.field_validator("record")
    @classmethod
    def _relative(cls, value: str) -> str:
        return layout.rel(value)  # entries written before the layout was relative hold URIs


FORMAT: Literal["tycho.dev/run/v1"] = "tycho.dev/run/v1"
ExecutorKind = Literal["subprocess", "container", "kubernetes"]


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True,
                                       extra="ignore", ser_json_inf_nan="constants")
    """``constants``: a NaN or infinite metric is stored as NaN/Infinity, as Python's json
    writes and reads it, not as null (which would not load back as a float)."""


class StageResult(Model):
    """What happened to one stage in one run."""

    name: str
    phase: phases.StagePhase = "Pending"
    cache_key: str | None = None
    """sha256 of everything that determines the outputs, computed before the stage runs."""
    key_components: dict[str, Any] | None = None
    """The key's parts by name (what ``explain`` and ``diff`` compare)."""
    cache_hit: bool | None = None
    outputs: dict[str, str] = {}
    """Output name -> sha256."""
    record: str | None = None
    """Store path of the provenance record that made the outputs."""
    metrics: dict[str, float] = {}
    """Last value of each metric the stage reported."""
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""
    execution: str | None = None
    """The executor's name for the execution (a Job name on a cluster)."""
    image: ImageRef | None = None
    """The image as the executor reported it (digest the node ran, on a cluster)."""
    trials: list[TrialResult] | None = None
    """A sweep's trials, in index order."""
    selection: Selection | None = None
    """A sweep's pick: the trial whose outputs are the stage's outputs, and why."""
    checks: list[Check] = []
    """The checks the stage reported."""


CheckSeverity = Literal["warn", "fail"]


class Check(Model):
    """A finding a stage reported about its data or model (the TYCHO_CHECKS contract)."""

    code: str
    severity: CheckSeverity
    message: str = ""
    details: dict[str, Any] = {}
    stage: str = ""
    """The stage that reported it (filled in when it is collected from a run)."""


class TrialResult(Model):
    """One trial of a sweep: a stage execution with its own params, key, record and outputs."""

    index: int
    params: dict[str, Any]
    """The swept params of this trial (the stage's other params unchanged)."""
    phase: phases.TrialPhase = "Pending"
    cache_key: str | None = None
    cache_hit: bool | None = None
    execution: str | None = None
    outputs: dict[str, str] = {}
    record: str | None = None
    metrics: dict[str, float] = {}
    objective: float | None = None
    curve: dict[int, float] = {}
    """The objective metric by step."""
    stopped_at: int | None = None
    """Early stopping stopped it at this step."""
    checks: list[Check] = []
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""


class Selection(Model):
    """Why a sweep's stage has the outputs it has."""

    trial: int
    metric: str
    goal: str
    value: float
    reason: str


class Runner(Model):
    """Who runs (ran) the run, so a run whose process died can be told from a live one."""

    executor: ExecutorKind = "subprocess"
    host: str | None = None
    pid: int | None = None
    namespace: str | None = None
    uid: str | None = None
    """The ExperimentPipeline's metadata.uid (cluster runs)."""
    generation: int | None = None


class RunSummary(Model):
    format: Literal["tycho.dev/run/v1"] = FORMAT
    run_id: str
    pipeline: str
    created_at: str
    finished_at: str | None = None
    heartbeat_at: str | None = None
    phase: phases.RunPhase = "Running"
    message: str = ""
    runner: Runner = Runner()
    store: str = ""
    """The store URL at the time of the run (for display: paths inside are relative)."""
    description: str = ""
    owner: str = ""
    tags: list[str] = []
    reproduces: str | None = None
    """The run this one re-derived (``tycho reproduce``)."""
    code: CodeRef | None = None
    environment: dict[str, Any] | None = None
    """What identifies the local environment (interpreter, platform) for subprocess runs."""
    spec_digest: str = ""
    """Digest of the spec without ``suspend``: a changed digest starts a new run."""
    external: dict[str, str] = {}
    """External input URL -> sha256 as seen when the run started."""
    manifest: dict[str, Any] = {}
    stages: dict[str, StageResult] = {}

    @pydantic.model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        stored = isinstance(data, dict) and "runId" in data and "format" not in data
        return _upgrade(data) if stored else data

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _upgrade(old: dict[str, Any]) -> dict[str, Any]:
    """Summaries written before ``format`` existed: absolute URIs, loose code/environment."""
    doc = dict(old)
    kube = doc.pop("kubernetes", None) or {}
    doc["runner"] = {"executor": "kubernetes" if doc.get("runner") == "kubernetes" else "subprocess",
                     "namespace": kube.get("namespace"), "uid": kube.get("uid"), "generation": kube.get("generation")}
    code = doc.get("code") or {}
    if code.get("digest"):
        archive = layout.rel(code["uri"]) if code.get("uri") else None
        source = code.get("source") or ("archive" if archive else "image-reference")
        doc["code"] = {"digest": code["digest"], "archive": archive, "commit": code.get("commit"),
                       "dirty": code.get("dirty"), "source": source}
    else:
        doc["code"] = None
    env = doc.get("environment")
    doc["environment"] = {"digest": env} if isinstance(env, str) else env
    stages = {}
    for name, entry in (doc.get("stages") or {}).items():
        entry = dict(entry, name=name)
        if entry.get("record"):
            entry["record"] = layout.rel(entry["record"])
        if entry.get("jobName"):
            entry["execution"] = entry["jobName"]
        image = entry.get("image") or {}
        entry["image"] = ({"reference": image["reference"], "digest": _digest(image.get("imageID")),
                           "resolvedBy": "kubelet" if image.get("imageID") else None}
                          if image.get("reference") else None)
        stages[name] = entry
    doc["stages"] = stages
    doc["format"] = FORMAT
    return doc


def _digest(image_id: str | None) -> str | None:
    return image_id.rsplit("sha256:", 1)[1] if image_id and "sha256:" in image_id else None


def now() -> str:
    """UTC time, milliseconds, RFC 3339 with Z: the one timestamp format of summaries and records."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
