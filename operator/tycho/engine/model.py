"""The engine's vocabulary: what an executor reports (``Execution``), what the engine asks
it to do (``Start``), and the inputs and answer of one scheduling step.

Executors (subprocess, container, Kubernetes Job) speak only these types to the
engine, so the scheduler never knows how a stage is executed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import pydantic

from tycho.api import models, phases
from tycho.engine import search
from tycho.provenance import documents
from tycho.stage import invocation

ExecutionPhase = Literal["Running", "Succeeded", "Failed", "Cancelled"]


class Execution(pydantic.BaseModel):
    """One stage execution as its executor sees it now."""

    model_config = pydantic.ConfigDict(frozen=True, defer_build=True)

    id: str
    """Deterministic (``execution_id``): a restarted engine finds what it started."""
    stage: str
    cache_key: str
    run_id: str
    """The run that started it (another run's execution of the same key may be adopted)."""
    trial: int | None = None
    """The sweep trial it is (a failed trial does not stop the run)."""
    phase: ExecutionPhase
    deleting: bool = False
    """Being removed (a Job with a deletionTimestamp): neither followed nor replaced yet."""
    attempts: int = 1
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""
    result: documents.CacheEntry | None = None
    """What it produced, once Succeeded (None if it claims success without a record)."""
    image: documents.ImageRef | None = None
    """The image as the executor resolved it (the digest a node or engine ran)."""


class Start(pydantic.BaseModel):
    """Start one stage execution."""

    model_config = pydantic.ConfigDict(frozen=True, defer_build=True)

    execution: str
    stage: models.Stage
    invocation: invocation.Invocation


Lookup = Callable[[str], "documents.CacheEntry | None"]
"""The verified cache entry of a key, or None (the engine's question to the store)."""
Suggest = Callable[[models.Sweep, int, Sequence[search.Told]], list[dict[str, Any]]]
"""A sweep batch's params (``tycho.engine.search.suggest``, or a memo of it)."""


@dataclasses.dataclass(frozen=True)
class Context:
    """What stays fixed while a run runs."""

    pipeline: models.ExperimentPipeline
    run_id: str
    store: str
    """Store URL given to the wrapper."""
    code: documents.CodeRef
    workdir: str
    images: Mapping[str, documents.ImageRef]
    """Per stage: the image as known before it runs."""
    image_parts: Mapping[str, Mapping[str, Any]]
    """Per stage: the image's part of the cache key (``cachekey.image_part``)."""
    external: Mapping[str, str]
    """External input URL -> sha256."""
    executor: str
    force: bool = False
    """Ignore the cache and adopt nothing (reproduce)."""


@dataclasses.dataclass(frozen=True)
class Observed:
    """What is known now: the run's stage results so far and its executions."""

    stages: Mapping[str, documents.StageResult]
    executions: Mapping[str, Execution]
    lookup: Lookup
    now: str
    cancel: bool = False
    """Stop the run: cancel what runs, start nothing."""
    suggest: Suggest = search.suggest


@dataclasses.dataclass
class Plan:
    """The answer of one step: the stage results now, and what to do."""

    stages: dict[str, documents.StageResult]
    phase: phases.RunPhase
    start: list[Start] = dataclasses.field(default_factory=list)
    cancel: list[str] = dataclasses.field(default_factory=list)
    waiting_for_deletion: bool = False
    """An execution of this key is being removed; step again shortly."""

    @property
    def finished(self) -> bool:
        return self.phase != "Running"
