"""Pydantic models of the ExperimentPipeline custom resource (its spec): the single
source of truth.

The CRD (``tycho.api.crd``), manifest validation (``tycho.api.validation``), the planner
and both runners read these types. Field docstrings become the CRD's descriptions, so
``kubectl explain xp.spec.stages`` shows them. The status is ``tycho.api.status``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from tycho.api import references, rules
from tycho.api.grammar import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    FILE_NAME,
    MAX_INPUTS,
    MAX_OUTPUTS,
    MAX_QUANTITY,
    MAX_REF,
    MAX_STAGES,
    MAX_SWEPT,
    SHA256,
    STAGE_NAME_MAX,
)
from tycho.api.schema import Model, crd

GROUP = "tycho.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ExperimentPipeline"
PLURAL = "experimentpipelines"
SINGULAR = "experimentpipeline"
SHORT_NAMES = ["xp"]

Finite = Annotated[float, pydantic.Field(allow_inf_nan=False)]
"""A float that JSON can carry (params, records and cache keys are JSON): no NaN or infinity."""
Scalar = bool | int | Finite | str
ParamValue = bool | int | Finite | str | list[Scalar]
Quantity = int | str
"""A Kubernetes quantity: a whole number, or a string such as 500m, 2, 512Mi (as in a pod spec)."""
LIST_MAP: dict[str, pydantic.JsonValue] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
"""A list of named items: the API server refuses two with one name (and server-side apply merges by name)."""


class SecretKeyRef(Model):
    name: str
    """Name of a Secret in the pipeline's namespace."""
    key: str
    """Key inside the Secret."""


class EnvValueFrom(Model):
    secret_key_ref: SecretKeyRef
    """Read the value from a Secret. Secret values never enter cache keys, status, logs or records."""


class EnvVar(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.ENV_VAR))
    name: str = pydantic.Field(json_schema_extra=crd(pattern=ENV_NAME))
    """Environment variable name."""
    value: str | None = None
    """Literal value; part of the cache key and recorded in provenance."""
    value_from: EnvValueFrom | None = None
    """Secret-backed value (locally: taken from the same-named variable of the caller's environment)."""


class SecretRef(Model):
    name: str
    """Secret holding storage credentials (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_ENDPOINT_URL)."""


class Storage(Model):
    url: str = references.DEFAULT_STORE_URL
    """fsspec URL where outputs and records live: file://PATH (relative paths are relative to the working directory), s3://BUCKET/PREFIX, gs://..."""  # noqa: E501
    secret_ref: SecretRef | None = None
    """Credentials for the store, from a Secret (cluster runs)."""


class Code(Model):
    path: str | None = None
    """Directory of the stage code, relative to the manifest file; stages run with it as working directory. Its content digest is part of every cache key."""  # noqa: E501
    digest: str | None = None
    """sha256 of the code as built into the stage image (cluster runs, where the operator cannot read the source). Set by the image build script."""  # noqa: E501
    workdir: str = "/app/pipeline"
    """Working directory of the code inside the stage image (cluster runs)."""


class StageInput(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.STAGE_INPUT))
    name: str = pydantic.Field(json_schema_extra=crd(pattern=FILE_NAME, maxLength=MAX_REF))
    """File name of the input inside the stage's inputs directory."""
    from_: str | None = pydantic.Field(default=None, alias="from",
                                       json_schema_extra=crd(pattern=r"^[^/]+/[^/]+$", maxLength=MAX_REF))
    """Another stage's output, as STAGE/OUTPUT."""
    url: str | None = None
    """External data (any fsspec URL) instead of a stage output."""
    sha256: str | None = pydantic.Field(default=None, json_schema_extra=crd(pattern=SHA256))
    """Expected sha256 of the external data; the stage fails when the data differs."""


class GPU(Model):
    count: int = pydantic.Field(default=1, json_schema_extra=crd(minimum=1))
    """Number of GPUs (extended resource nvidia.com/gpu)."""
    type: str | None = None
    """GPU product, matched against the node label nvidia.com/gpu.product."""


class ResourceList(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.RESOURCE_LIST))
    cpu: Quantity | None = pydantic.Field(default=None, json_schema_extra=crd(maxLength=MAX_QUANTITY))
    """A Kubernetes quantity such as 500m or 2."""
    memory: Quantity | None = pydantic.Field(default=None, json_schema_extra=crd(maxLength=MAX_QUANTITY))
    """A Kubernetes quantity such as 512Mi or 2Gi."""


class Resources(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.RESOURCES))
    cpu: Quantity | None = pydantic.Field(default=None, json_schema_extra=crd(maxLength=MAX_QUANTITY))
    """CPU request and limit, a Kubernetes quantity such as 500m or 2 (shorthand for requests.cpu = limits.cpu)."""
    memory: Quantity | None = pydantic.Field(default=None, json_schema_extra=crd(maxLength=MAX_QUANTITY))
    """Memory request and limit, a Kubernetes quantity such as 512Mi or 2Gi (shorthand for requests.memory = limits.memory)."""  # noqa: E501
    requests: ResourceList | None = None
    """What the scheduler reserves, when it should differ from the limit."""
    limits: ResourceList | None = None
    """The most the stage may use (memory over the limit is killed, CPU is throttled)."""
    gpu: GPU | None = None
    """GPUs; the stage is placed on a GPU node."""

    def request(self, name: Literal["cpu", "memory"]) -> Quantity | None:
        given: Quantity | None = getattr(self, name)
        explicit = getattr(self.requests, name) if self.requests else None
        return explicit if explicit is not None else given

    def limit(self, name: Literal["cpu", "memory"]) -> Quantity | None:
        given: Quantity | None = getattr(self, name)
        explicit = getattr(self.limits, name) if self.limits else None
        return explicit if explicit is not None else given


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Retries(Model):
    limit: int = pydantic.Field(default=0, ge=0, le=20)
    """How many times a failed attempt is retried."""
    backoff_seconds: int = pydantic.Field(default=10, ge=0, le=3600)
    """Delay before the first retry; doubles with each further retry."""


class Cache(Model):
    enabled: bool = True
    """Reuse outputs recorded for the same cache key."""
    version: str = "1"
    """Salt in the cache key: change it to force a re-run without changing anything else."""


class SweepParameter(Model):
    """One swept param: a list of values, or a numeric range."""

    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.SWEEP_PARAMETER))
    values: list[Scalar] | None = pydantic.Field(default=None, json_schema_extra=crd(minItems=1))
    """The values to choose from (grid needs these)."""
    low: float | None = pydantic.Field(default=None, allow_inf_nan=False)
    """Lower end of a numeric range (inclusive)."""
    high: float | None = pydantic.Field(default=None, allow_inf_nan=False)
    """Upper end of a numeric range (inclusive)."""
    type: Literal["int", "float"] = "float"
    """Numeric type of a range."""
    log: bool = False
    """Sample the range on a log scale (low must be > 0)."""


class Objective(Model):
    metric: str = pydantic.Field(json_schema_extra=crd(pattern=r"\S"))
    """The metric a trial reports (its last value is the trial's objective)."""
    goal: Literal["maximize", "minimize"] = "maximize"


class EarlyStopping(Model):
    rule: Literal["median"] = "median"
    """median: stop a trial whose best intermediate value so far is worse than the median of earlier batches' trials at the same step."""  # noqa: E501
    min_steps: int = pydantic.Field(default=5, ge=0)
    """Steps a trial always runs before the rule applies."""


class Sweep(Model):
    """Run the stage as trials, each a stage execution of its own (own params, cache key,
    record, outputs), and expose the best trial's outputs as the stage's outputs."""

    parameters: dict[str, SweepParameter] = pydantic.Field(max_length=MAX_SWEPT, json_schema_extra=crd(minProperties=1))
    """Swept params by name; a trial's params are the stage's params with these replaced."""
    algorithm: Literal["grid", "random", "tpe"] = "tpe"
    """How trials are suggested (Optuna's samplers, seeded)."""
    trials: int = pydantic.Field(ge=1, le=1000)
    """How many trials; raising it runs only the new ones."""
    parallelism: int = pydantic.Field(default=1, ge=1, le=64)
    """Trials at once; also the batch size: batch k is suggested from the results of batches before k only, so the search is the same whatever order trials finish in."""  # noqa: E501
    seed: int = 0
    """Seed of the sampler."""
    objective: Objective
    """What the best trial maximises or minimises (ties: the lower trial index)."""
    early_stopping: EarlyStopping | None = None
    """Stop unpromising trials early, on intermediate values the stage reports with ``step``."""


OutputType = Literal["file", "directory"]


class Output(Model):
    name: str = pydantic.Field(json_schema_extra=crd(pattern=FILE_NAME, maxLength=MAX_REF))
    """File (or folder) name the stage writes under its outputs directory."""
    type: OutputType = "file"
    """file: one file. directory: a folder (a SavedModel, shards), stored as a tree of file digests."""
    media_type: str | None = None
    """How to show it (text/html, image/png, application/json, ...); detected from content when not set."""


def _output(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


OutputItem = Annotated[Output, pydantic.BeforeValidator(_output), pydantic.WithJsonSchema({
    "x-kubernetes-preserve-unknown-fields": True,
    "description": "An output: its name (a file), or {name, type: file|directory, mediaType}."})]


class Stage(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.STAGE))
    name: str = pydantic.Field(json_schema_extra=crd(pattern=DNS_LABEL, maxLength=STAGE_NAME_MAX))
    """Stage name, a DNS-1123 label (lowercase letters, digits, '-')."""
    image: str = pydantic.Field(json_schema_extra=crd(pattern=references.IMAGE_REFERENCE,
                                                      maxLength=references.IMAGE_MAX))
    """Container image (tag or @sha256 digest). The resolved digest is always recorded."""
    command: list[str] = pydantic.Field(json_schema_extra=crd(minItems=1))
    """Command run in the code's working directory, e.g. [python, train.py]."""
    args: list[str] = []
    """Arguments appended to the command."""
    env: list[EnvVar] = pydantic.Field(default=[], json_schema_extra=crd(**LIST_MAP))
    """Extra environment variables."""
    params: dict[str, ParamValue] = {}
    """Typed parameters (bool, int, float, string, or a list of those) given to the stage as a JSON file."""
    inputs: list[StageInput] = pydantic.Field(default=[], max_length=MAX_INPUTS, json_schema_extra=crd(**LIST_MAP))
    """Files the stage reads: outputs of earlier stages or external data."""
    outputs: list[OutputItem] = pydantic.Field(default=[], max_length=MAX_OUTPUTS)
    """What the stage must write: names of files, or {name, type: directory} for folders."""
    resources: Resources = Resources()
    """CPU, memory and GPU."""
    node_selector: dict[str, str] = {}
    """Node labels the stage's pod must match (cluster runs)."""
    tolerations: list[Toleration] = []
    """Taints the stage's pod tolerates; GPU stages tolerate nvidia.com/gpu by default."""
    retries: Retries = Retries()
    """Retries with exponential backoff."""
    timeout_seconds: int | None = pydantic.Field(default=None, ge=1)
    """Wall-clock limit of one attempt."""
    cache: Cache = Cache()
    """Caching of this stage's outputs."""
    sweep: Sweep | None = None
    """Run this stage as a hyperparameter sweep of trials."""
    network: bool = False
    """Whether the stage may reach the network beyond the store (a downloader does). Stage pods get a NetworkPolicy that allows egress to the store (and DNS) only, unless this is true."""  # noqa: E501
    service_account_name: str | None = pydantic.Field(default=None, json_schema_extra=crd(pattern=DNS_SUBDOMAIN))
    """ServiceAccount of the stage's pod (cluster runs; default: the operator's stage account). Its token is not mounted."""  # noqa: E501

    def output(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


class Spec(Model):
    model_config = pydantic.ConfigDict(json_schema_extra=rules.rules(*rules.SPEC))
    description: str = ""
    """What this pipeline is for."""
    owner: str = ""
    """Team or person accountable for its runs."""
    tags: list[str] = []
    """Labels to filter and compare runs by."""
    storage: Storage = Storage()
    """Where outputs and provenance records are stored."""
    code: Code = Code()
    """The stage code."""
    suspend: bool = False
    """Stop creating stage Jobs and delete running ones; setting it back to false resumes."""
    max_parallel: int = pydantic.Field(default=2, ge=1, le=64)
    """How many independent stages may run at once."""
    stages: list[Stage] = pydantic.Field(min_length=1, max_length=MAX_STAGES, json_schema_extra=crd(**LIST_MAP))
    """The stages; order does not matter, inputs define the graph."""


class Metadata(Model):
    model_config = pydantic.ConfigDict(extra="allow")
    name: str
    """Pipeline name."""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None


class ExperimentPipeline(Model):
    api_version: Literal["tycho.dev/v1alpha1"]
    kind: Literal["ExperimentPipeline"]
    metadata: Metadata
    spec: Spec
    status: dict[str, object] | None = None
