"""The container executor (``tycho run --executor container``): every stage runs in its
image through podman or docker, as it would in a stage pod.

Each execution is one wrapper process on this machine (``tycho stage-exec --container``,
``tycho.executors.contained``), so starting, following, cancelling and reading results
are the subprocess executor's; only the run phase moves into the container. The image of
each stage is resolved once per run (``engines.inspect``): its digest is the image part of
the cache key and is recorded (``resolvedBy: podman|docker``), by the same rules as a
cluster's (``tycho.engine.identity``); so is the code: the code in the image, named by
``spec.code.digest``. A run on a laptop and a run on a cluster of the same manifest,
images pinned by digest, therefore share one cache.

Cancelling stops the wrapper process, which stops its container (SIGTERM, grace,
SIGKILL); ``kill`` and ``close`` also remove any container of this runner the engine still
holds (a wrapper killed outright leaves its container behind).
"""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tycho.api import models
from tycho.engine import identity, model
from tycho.executors import engines, process
from tycho.provenance import documents, store as store_mod

LABEL_RUNNER = "dev.tycho.runner"
LABEL_RUN, LABEL_STAGE = "dev.tycho.run", "dev.tycho.stage"


class ContainerExecutor(process.ProcessExecutor):
    kind = "container"

    def __init__(self, work: Path, logs: Path, listener: process.Listener, engine: engines.Engine,
                 extra_env: Mapping[str, str] | None = None, signing_key: Path | None = None) -> None:
        super().__init__(work, logs, listener, extra_env, signing_key)
        self.engine = engine
        self.runner = uuid.uuid4().hex[:12]
        """Labels this runner's containers, so the ones left behind can be found."""
        self._images: dict[str, engines.Image] = {}
        self._code_dir: Path | None = None
        self._workdir = "/app/pipeline"

    # ---- identity --------------------------------------------------------------------------
    def resolve(self, reference: str) -> engines.Image:
        """The local image a reference names (once per run: a tag moved later changes nothing)."""
        if reference not in self._images:
            self._images[reference] = engines.inspect(self.engine, reference)
        return self._images[reference]

    def image(self, stage: models.Stage) -> tuple[documents.ImageRef, Mapping[str, Any]]:
        found = self.resolve(stage.image)
        pinned = identity.pinned_digest(stage.image)
        if pinned is not None and pinned not in (found.digest, found.id.removeprefix("sha256:")):
            raise engines.EngineError(f"image {stage.image}: {self.engine.name} holds sha256:{found.digest} "
                                      "under that name, not the pinned digest")
        return identity.image(stage, documents.ImageRef(reference=stage.image, digest=found.digest,
                                                        resolved_by=self.engine.name))

    def admit(self, entry: documents.CacheEntry) -> str | None:
        return None  # the image digest is the whole environment

    def code(self, pipeline: models.ExperimentPipeline, store: store_mod.Store, manifest_dir: Path,
             restored: tuple[documents.CodeRef, Path] | None = None) -> tuple[documents.CodeRef, str]:
        """The code in the images, as on a cluster; to reproduce, the recorded code mounted
        read-only over it."""
        self._workdir = pipeline.spec.code.workdir
        if restored is not None:
            self._code_dir = restored[1]
            return restored[0], self._workdir
        return identity.code(pipeline.spec), self._workdir

    # ---- lifecycle -------------------------------------------------------------------------
    def command(self, start: model.Start, invocation: Path, result: Path) -> list[str]:
        stage, inv = start.stage, start.invocation
        cpus, memory = engines.limits(stage)
        gpu = stage.resources.gpu
        run = engines.ContainerRun(
            engine=self.engine, image=self.resolve(stage.image).id,
            name=f"tycho-{start.execution}-{uuid.uuid4().hex[:6]}",
            labels={LABEL_RUNNER: self.runner, LABEL_RUN: inv.run_id, LABEL_STAGE: stage.name},
            cpus=cpus, memory=memory, gpus=gpu.count if gpu is not None else None, network=stage.network,
            workdir=self._workdir, code_dir=str(self._code_dir) if self._code_dir else None,
            secret_env=list(inv.secret_env), node=socket.gethostname())
        spec = invocation.with_name(f"{start.execution}.container.json")
        spec.write_text(run.model_dump_json())
        return [sys.executable, "-m", "tycho", "stage-exec", "--invocation", str(invocation), "--result", str(result),
                "--container", str(spec)]

    def kill(self) -> None:
        super().kill()
        self._remove_left()

    def close(self) -> None:
        super().close()
        self._remove_left()

    def _remove_left(self) -> None:
        engines.remove(self.engine, *engines.labelled(self.engine, f"{LABEL_RUNNER}={self.runner}"))


def make(work: Path, logs: Path, listener: process.Listener, engine: str | None = None) -> ContainerExecutor:
    """The executor with the engine named (or found on PATH); raises EngineError."""
    return ContainerExecutor(work, logs, listener, engines.find(engine))
