"""The status of an ExperimentPipeline: what the operator writes (``status``), and the
columns ``kubectl get xp`` prints from it. Commands that only read manifests never build
these types (``schema.StatusModel`` defers their validators)."""

from __future__ import annotations

from typing import Literal

from tycho.api import models, phases, schema


class Condition(schema.StatusModel):
    type: str
    """Ready, Progressing, Degraded or Valid."""
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    """CamelCase reason."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: str | None = None
    """RFC 3339 time."""
    observed_generation: int | None = None


class OutputStatus(schema.StatusModel):
    name: str
    sha256: str
    uri: str
    """Content-addressed location in the store."""


class TrialStatus(schema.StatusModel):
    index: int
    phase: phases.TrialPhase = "Pending"
    params: dict[str, models.ParamValue] = {}
    """The swept params of this trial."""
    objective: float | None = None
    job_name: str | None = None
    message: str = ""


class CheckStatus(schema.StatusModel):
    code: str
    severity: Literal["warn", "fail"]
    message: str = ""


class SweepStatus(schema.StatusModel):
    trials: int
    finished: int = 0
    running: int = 0
    best: int | None = None
    """Index of the selected trial, once all trials finished."""
    objective: str = ""
    value: float | None = None
    reason: str = ""
    """Why the best trial won."""
    items: list[TrialStatus] = []


class StageStatus(schema.StatusModel):
    name: str
    phase: phases.StagePhase = "Pending"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    cache_key: str | None = None
    """sha256 of the stage's inputs, code, image, command and params, computed before it runs."""
    cache_hit: bool | None = None
    job_name: str | None = None
    outputs: list[OutputStatus] = []
    provenance: str | None = None
    """URI of the stage's provenance record (in-toto Statement, SLSA Provenance v1)."""
    metrics: dict[str, float] = {}
    """Last value of each metric the stage reported."""
    sweep: SweepStatus | None = None
    """A sweep's trials: progress, each trial's params and objective, the pick."""
    checks: list[CheckStatus] = []
    """Checks the stage reported on its data or model (docs/checks.md)."""
    message: str = ""


class Status(schema.StatusModel):
    phase: phases.PipelinePhase = "Pending"
    progress: str = ""
    """Finished stages / all stages, e.g. 5/7."""
    headline: str = ""
    """The most recent headline metric, e.g. test_accuracy=0.97."""
    sweeps: str = ""
    """Sweep progress, e.g. tune 5/12."""
    run_id: str | None = None
    """The run in progress (or last finished): its summary is runs/<runId>.json in the store."""
    spec_digest: str | None = None
    """Digest of the spec the run was started for (all of it but suspend): a new digest starts a new run."""
    observed_generation: int | None = None
    stages: list[StageStatus] = []
    conditions: list[Condition] = []
    message: str = ""


PRINTER_COLUMNS: list[dict[str, object]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Metric", "type": "string", "jsonPath": ".status.headline"},
    {"name": "Sweep", "type": "string", "jsonPath": ".status.sweeps"},
    {"name": "Run", "type": "string", "jsonPath": ".status.runId", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

