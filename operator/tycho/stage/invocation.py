"""What the stage wrapper is asked to do, and what it reports back.

An ``Invocation`` is built by the engine for every stage execution and travels as JSON
(a file for local executors, the ``TYCHO_INVOCATION`` variable of a stage Job), so its
fields are the contract between the engine and the wrapper. It never holds secret
values: secret-backed variables are listed by name and read from the process
environment. Store content is named by digest and record path, relative to the store,
so an invocation means the same thing against any copy of the store.
"""

from __future__ import annotations

from typing import Any

import pydantic

from tycho.api import models
from tycho.provenance import documents


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", defer_build=True)


class InputRef(Strict):
    name: str
    type: models.OutputType = "file"
    """file, or directory (a stored tree, materialised as a folder)."""
    sha256: str | None = None
    """Digest of the content; None for external data without a pinned digest."""
    url: str | None = None
    """External data (any fsspec URL); None for an upstream output, read from the store by digest."""
    producer: str | None = None
    """Store path of the record of the stage that produced it."""


class StopRule(Strict):
    """Early stopping for a sweep trial, applied by the wrapper where the trial runs: stop
    at the first step whose best-so-far ``metric`` is worse than ``thresholds[step]``."""

    metric: str
    goal: str
    thresholds: dict[int, float]


class Invocation(Strict):
    pipeline: dict[str, Any]
    run_id: str
    stage: str
    invocation_id: str
    store: str
    image: documents.ImageRef
    command: list[str]
    args: list[str] = []
    env: dict[str, str] = {}
    secret_env: list[str] = []
    params: dict[str, Any] = {}
    inputs: list[InputRef] = []
    outputs: list[models.Output] = []
    code: documents.CodeRef
    workdir: str
    """Where the code is on the machine (or in the image) that runs the stage."""
    cache_key: str
    trial: int | None = None
    """The sweep trial this execution is (its record is records/<run>/<stage>/trial-<n>.json)."""
    stop_rule: StopRule | None = None
    objective: str | None = None
    """A sweep trial's objective metric: its curve is kept in the cache entry."""
    key_components: dict[str, Any] = {}
    """The parts of the cache key (``tycho.planning.cachekey.components``), recorded so a
    record's key can be recomputed from the record alone."""
    executor: str = "subprocess"
    """The executor that runs it; part of the record's builder id."""
    attempts: int = 1
    backoff_seconds: float = 0
    timeout_seconds: float | None = None


class Result(Strict):
    stage: str
    trial: int | None = None
    curve: dict[int, float] | None = None
    stopped: int | None = None
    checks: list[documents.Check] = []
    outputs: dict[str, str]
    directories: list[str] = []
    record: str
    metrics: dict[str, float]
    attempts: int
    started: str
    finished: str
    environment: dict[str, str] | None = None


def build(*, stage: models.Stage, pipeline: dict[str, Any], run_id: str, store_url: str,
          image: documents.ImageRef, code: documents.CodeRef, workdir: str, cache_key: str,
          key_components: dict[str, Any] | None = None,
          input_digests: dict[str, str], producers: dict[str, str], input_types: dict[str, models.OutputType],
          executor: str, trial: int | None = None, stop_rule: StopRule | None = None,
          objective: str | None = None) -> Invocation:
    """The invocation for one planned stage. Pure: the engine calls it for every executor.

    ``producers`` maps an upstream stage name to the record that made its outputs;
    ``input_types`` says which inputs are directories.
    """
    inputs: list[InputRef] = []
    for inp in stage.inputs:
        digest = input_digests[inp.name]
        if inp.from_:
            upstream = inp.from_.split("/", 1)[0]
            inputs.append(InputRef(name=inp.name, type=input_types.get(inp.name, "file"), sha256=digest,
                                   producer=producers.get(upstream)))
        else:
            inputs.append(InputRef(name=inp.name, url=inp.url, sha256=digest))
    return Invocation(
        pipeline=pipeline, run_id=run_id, stage=stage.name,
        invocation_id=f"{run_id}/{stage.name}" + (f"/trial-{trial}" if trial is not None else ""),
        store=store_url, image=image, command=list(stage.command), args=list(stage.args),
        env={e.name: e.value for e in stage.env if e.value is not None},
        secret_env=[e.name for e in stage.env if e.value_from is not None],
        params=dict(stage.params), inputs=inputs, outputs=list(stage.outputs), code=code, workdir=workdir,
        cache_key=cache_key, key_components=dict(key_components or {}), trial=trial, stop_rule=stop_rule,
        objective=objective, executor=executor, attempts=stage.retries.limit + 1,
        backoff_seconds=stage.retries.backoff_seconds, timeout_seconds=stage.timeout_seconds)
