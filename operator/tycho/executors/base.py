"""The Executor interface: how a stage execution is started, observed, cancelled and read.

The engine (``tycho.engine.scheduler``) decides; an executor only executes. Every
executor runs the same stage wrapper (``tycho stage-exec``) somewhere — a subprocess, a
container, a Kubernetes Job — and reports ``tycho.engine.model.Execution`` values.
Executors also say what identifies a stage's image for the cache key (``image``) and
whether a cache entry made elsewhere may be used here (``admit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tycho.api import models
from tycho.engine import model
from tycho.provenance import documents, store as store_mod


class Executor(Protocol):
    kind: str
    """subprocess, container or kubernetes: recorded in summaries and the record's builder id."""

    def image(self, stage: models.Stage) -> tuple[documents.ImageRef, Mapping[str, Any]]:
        """The stage's image as known before it runs, and its part of the cache key."""

    def admit(self, entry: documents.CacheEntry) -> str | None:
        """Why a verified cache entry cannot be used here, or None when it can."""

    def start(self, start: model.Start) -> None:
        """Start an execution; it shows in ``observe`` from now on."""

    def observe(self) -> dict[str, model.Execution]:
        """Every execution this executor knows of, by id."""

    def cancel(self, execution: str) -> None:
        """Stop an execution (SIGTERM, a grace period, then SIGKILL; or delete the Job)."""

    def logs(self, execution: str) -> str:
        """What the execution printed so far (may be the tail only)."""


@runtime_checkable
class LocalExecutor(Executor, Protocol):
    """An executor on this machine, driven by the local runner's loop."""

    def code(self, pipeline: models.ExperimentPipeline, store: store_mod.Store, manifest_dir: Path,
             restored: tuple[documents.CodeRef, Path] | None = None) -> tuple[documents.CodeRef, str]:
        """The run's code identity and the folder stages run it from (in their image, or on
        this machine); ``restored``: a recorded code archive extracted here (reproduce)."""

    def wait(self, timeout: float) -> None:
        """Block until an execution changes state, or ``timeout`` seconds."""

    def close(self) -> None:
        """Stop whatever still runs (the runner is going away)."""
