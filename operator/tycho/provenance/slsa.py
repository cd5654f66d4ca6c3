"""Strict schemas of what a record is: an in-toto Statement v1 whose predicate is SLSA
Provenance v1, and Tycho's build type inside it.

``tycho verify`` and the engine's cache lookup parse every record with ``parse``; a record
that does not fit exactly (an unknown field, a URI without a scheme, a digest that is not
lowercase hex, content that is not base64, a timestamp that is not RFC 3339) is refused
with the field path. Sources: https://github.com/in-toto/attestation/blob/main/spec/v1/
(statement.md, resource_descriptor.md) and https://slsa.dev/spec/v1.0/provenance.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Annotated, Any, Literal, TypeVar

import pydantic

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://tycho.dev/stage/v1"
"""Tycho's build type: what ``TychoExternal`` and ``TychoInternal`` below describe."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")
_HEX = re.compile(r"^[0-9a-f]+$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128, "sha384": 96, "sha1": 40, "gitCommit": 40}


def _uri(value: str) -> str:
    if not _URI.match(value):
        raise ValueError(f"{value!r} is not a URI with a scheme")
    return value


def _digest(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError("a digest set needs at least one algorithm")
    for algorithm, hexdigest in value.items():
        if not _HEX.match(hexdigest):
            raise ValueError(f"digest {algorithm} is not lowercase hex")
        want = _DIGEST_LENGTHS.get(algorithm)
        if want is not None and len(hexdigest) != want:
            raise ValueError(f"digest {algorithm} has {len(hexdigest)} hex digits, expected {want}")
    return value


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("content is not base64") from None
    return value


def _timestamp(value: str) -> str:
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


M = TypeVar("M", bound=pydantic.BaseModel)
Uri = Annotated[str, pydantic.AfterValidator(_uri)]
DigestSet = Annotated[dict[str, str], pydantic.AfterValidator(_digest)]
Bytes = Annotated[str, pydantic.AfterValidator(_base64)]
Timestamp = Annotated[str, pydantic.AfterValidator(_timestamp)]


class Strict(pydantic.BaseModel):
    """Deferred: the nested types are only ever validated inside ``Statement``, so one
    validator is built, when the first record is parsed."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class ResourceDescriptor(Strict):
    """in-toto ResourceDescriptor v1: at least one of uri, digest, content."""

    name: str | None = None
    uri: Uri | None = None
    digest: DigestSet | None = None
    content: Bytes | None = None
    downloadLocation: Uri | None = None
    mediaType: str | None = None
    annotations: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _identified(self) -> ResourceDescriptor:
        if self.uri is None and self.digest is None and self.content is None:
            raise ValueError("a ResourceDescriptor needs one of uri, digest, content")
        return self


class Subject(ResourceDescriptor):
    """A Statement subject: a ResourceDescriptor that must carry a digest."""

    digest: DigestSet


class Builder(Strict):
    id: Uri
    version: dict[str, str] | None = None
    builderDependencies: list[ResourceDescriptor] | None = None


class BuildMetadata(Strict):
    invocationId: str | None = None
    startedOn: Timestamp | None = None
    finishedOn: Timestamp | None = None


class RunDetails(Strict):
    builder: Builder
    metadata: BuildMetadata | None = None
    byproducts: list[ResourceDescriptor] | None = None


class BuildDefinition(Strict):
    buildType: Uri
    externalParameters: dict[str, Any]
    internalParameters: dict[str, Any] | None = None
    resolvedDependencies: list[ResourceDescriptor] | None = None


class Provenance(Strict):
    buildDefinition: BuildDefinition
    runDetails: RunDetails


class Statement(Strict):
    type_: Literal["https://in-toto.io/Statement/v1"] = pydantic.Field(alias="_type")
    subject: Annotated[list[Subject], pydantic.Field(min_length=1)]
    predicateType: Literal["https://slsa.dev/provenance/v1"]
    predicate: Provenance


# ---- Tycho's build type ------------------------------------------------------------------
class PipelineRef(Strict):
    name: str
    uid: str
    generation: int


class TychoExternal(Strict):
    """externalParameters: what the pipeline's author controls."""

    pipeline: PipelineRef
    stage: str
    params: dict[str, Any]
    command: list[str]
    args: list[str]
    env: dict[str, str]
    """The stage's literal env (Secret-backed values are never recorded)."""


class TychoInternal(Strict):
    """internalParameters: what Tycho itself set."""

    cacheKey: Annotated[str, pydantic.StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    keyComponents: dict[str, Any]
    """Everything the cache key covers (``tycho.planning.cachekey.components``): the key
    is recomputed from these, and these are checked against the rest of the record."""
    runId: str
    attempts: Annotated[int, pydantic.Field(ge=1)]
    trial: Annotated[int, pydantic.Field(ge=0)] | None = None
    """The sweep trial the execution was."""
    stoppedAt: Annotated[int, pydantic.Field(ge=0)] | None = None
    """A trial stopped early at this step: its only subject is its metrics log."""


class Tycho(pydantic.BaseModel):
    """A record parsed strictly, with Tycho's parameters typed."""

    model_config = pydantic.ConfigDict(frozen=True, defer_build=True)

    statement: Statement
    external: TychoExternal
    internal: TychoInternal


def parse(doc: Any) -> Tycho:
    """The record, strictly parsed; raises ``ValueError`` naming the first field that does not fit."""
    statement = _validate(Statement, doc, "")
    build = statement.predicate.buildDefinition
    if build.buildType != BUILD_TYPE:
        raise ValueError(f"predicate.buildDefinition.buildType: {build.buildType!r} is not {BUILD_TYPE}")
    external = _validate(TychoExternal, build.externalParameters, "predicate.buildDefinition.externalParameters")
    internal = _validate(TychoInternal, build.internalParameters or {}, "predicate.buildDefinition.internalParameters")
    return Tycho(statement=statement, external=external, internal=internal)


def _validate(model: type[M], doc: Any, base: str) -> M:
    try:
        return model.model_validate(doc)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join([base] * bool(base) + [str(p) for p in first["loc"]]) or "(document)"
        raise ValueError(f"{where}: {first['msg']}") from None
