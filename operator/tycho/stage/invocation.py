"""What the stage wrapper is asked to do, and what it reports back.

An ``Invocation`` is built by a runner (local runner or operator) from a plan decision and
travels as JSON (the ``TYCHO_INVOCATION`` variable of a stage Job), so its fields are the
contract between planner and wrapper. It never holds secret values: secret-backed
variables are listed by name and read from the process environment.
"""

from __future__ import annotations

from typing import Any

import pydantic


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class InputRef(Strict):
    name: str
    uri: str
    """Store object URI for stage outputs; the external URL otherwise."""
    sha256: str | None = None
    """Known or expected digest; None for external data without a pinned digest."""
    producer: str | None = None
    """Provenance record of the stage that produced it."""


class ImageRef(Strict):
    reference: str
    digest: str | None = None
    resolved_by: str | None = None


class CodeRef(Strict):
    digest: str
    workdir: str
    uri: str | None = None
    commit: str | None = None
    dirty: bool | None = None


class Invocation(Strict):
    pipeline: dict[str, Any]
    run_id: str
    stage: str
    invocation_id: str
    store: str
    image: ImageRef
    command: list[str]
    args: list[str] = []
    env: dict[str, str] = {}
    secret_env: list[str] = []
    params: dict[str, Any] = {}
    inputs: list[InputRef] = []
    outputs: list[str] = []
    code: CodeRef
    cache_key: str
    attempts: int = 1
    backoff_seconds: float = 0
    timeout_seconds: float | None = None


class Result(Strict):
    stage: str
    outputs: dict[str, str]
    output_uris: dict[str, str]
    record: str
    metrics: dict[str, float]
    attempts: int
    started: str
    finished: str


def build(*, stage: Any, pipeline: dict[str, Any], run_id: str, invocation_id: str, store_url: str,
          image: ImageRef, code: CodeRef, cache_key: str, input_digests: dict[str, str],
          producers: dict[str, str], object_uri: Any, attempts: int) -> Invocation:
    """The invocation for one planned stage (``stage`` is a ``tycho.api.models.Stage``).

    ``producers`` maps an upstream stage name to the record that made its outputs;
    ``object_uri(sha256)`` gives a blob's URI in the store. Pure: both runners call it.
    """
    inputs: list[InputRef] = []
    for inp in stage.inputs:
        digest = input_digests[inp.name]
        if inp.from_:
            upstream = inp.from_.split("/", 1)[0]
            inputs.append(InputRef(name=inp.name, uri=object_uri(digest), sha256=digest,
                                   producer=producers.get(upstream)))
        else:
            inputs.append(InputRef(name=inp.name, uri=inp.url, sha256=digest))
    return Invocation(
        pipeline=pipeline, run_id=run_id, stage=stage.name, invocation_id=invocation_id, store=store_url,
        image=image, command=list(stage.command), args=list(stage.args),
        env={e.name: e.value for e in stage.env if e.value is not None},
        secret_env=[e.name for e in stage.env if e.value_from is not None],
        params=dict(stage.params), inputs=inputs, outputs=list(stage.outputs), code=code,
        cache_key=cache_key, attempts=attempts, backoff_seconds=stage.retries.backoff_seconds,
        timeout_seconds=stage.timeout_seconds)
