"""Checks a manifest before anything runs and explains every problem.

Each problem names the field path (``spec.stages[2].inputs[0].from``), what is wrong
and what would fix it. Used by ``tycho validate``, by ``tycho run`` before it plans, and
by the operator before it creates any Job, so a rejected manifest never half-runs.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import pydantic
import yaml

from tycho.api import dag, grammar, models, problems as problems_mod, references, yamlload
from tycho.api.problems import InvalidManifest, Problem

DNS_LABEL = grammar.regex(grammar.DNS_LABEL)
DNS_SUBDOMAIN = grammar.regex(grammar.DNS_SUBDOMAIN)
FILE_NAME = grammar.regex(grammar.FILE_NAME)
ENV_NAME = grammar.regex(grammar.ENV_NAME)
QUANTITY = grammar.regex(grammar.QUANTITY)
SHA256 = grammar.regex(grammar.SHA256)
RESERVED_ENV_PREFIX = "TYCHO_"
STAGES_FIX = "split it into pipelines that read each other's outputs by URL"
QUANTITY_FIX = "use e.g. 500m or 2 for cpu, 512Mi or 2Gi for memory (a whole number or a string)"


def _loc_to_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"bool", "int", "float", "str", "list[union[bool,int,float,str]]"}:
            continue  # union branch names pydantic adds; not part of the user's path
        elif part.startswith(("list[", "union[", "function-")):
            continue
        else:
            path += ("." if path else "") + part
    return path


_FIXES = {
    "missing": "add the field",
    "extra_forbidden": "remove it, or check its spelling against `kubectl explain xp.spec` / docs/manifest.md",
    "literal_error": "use one of the allowed values",
    "too_long": "give fewer (the API server refuses more too)",
    "too_short": "add at least one",
}


def _from_pydantic(error: pydantic.ValidationError) -> list[Problem]:
    problems: dict[str, Problem] = {}
    for item in error.errors():
        path = _loc_to_path(item["loc"])
        kind = item["type"]
        if path.endswith(".image") and kind == "missing":
            fix = "set the stage's container image, e.g. image: tycho/stage-cpu:0.1.0"
        elif kind == "finite_number":
            problems[path] = Problem(path, f"{item.get('input')!r} is not a finite number",
                                     "give a finite number (NaN and infinity do not survive JSON)")
            continue
        elif ".params." in path:  # a union's other branches failed too: the finite-number problem says most
            fix = "use a bool, int, float, string, or a list of those (no objects or null)"
            problems.setdefault(path, Problem(path, "unsupported param type", fix))
            continue
        elif path == "spec.stages" and kind in ("too_short", "too_long"):
            many = len(item["input"]) if isinstance(item.get("input"), list) else 0
            problems[path] = Problem(path, "no stages", "add at least one stage") if kind == "too_short" else Problem(
                path, f"{many} stages; a pipeline has at most {grammar.MAX_STAGES}", STAGES_FIX)
            continue
        elif path.endswith((".cpu", ".memory")) and ".resources" in path:
            problems[path] = Problem(path, f"{item.get('input')!r} is not a Kubernetes quantity", QUANTITY_FIX)
            continue
        else:
            fix = _FIXES.get(kind, "correct the value")
        msg = item["msg"]
        if kind == "extra_forbidden":
            msg = "unknown field"
        problems.setdefault(path, Problem(path, msg, fix))
    return list(problems.values())


def _check_names(spec: models.Spec, name: str) -> Iterable[Problem]:
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        yield Problem("metadata.name", f"{name!r} is not a valid Kubernetes name",
                      "use lowercase letters, digits and '-', starting and ending alphanumeric")
    seen: dict[str, int] = {}
    for i, stage in enumerate(spec.stages):
        path = f"spec.stages[{i}].name"
        if stage.name in seen:
            yield Problem(path, f"duplicate stage name {stage.name!r} (also spec.stages[{seen[stage.name]}])",
                          "give every stage a unique name")
        seen.setdefault(stage.name, i)
        if not DNS_LABEL.match(stage.name):
            yield Problem(path, f"{stage.name!r} is not a valid DNS-1123 label",
                          "use lowercase letters, digits and '-', starting and ending alphanumeric")
        if stage.service_account_name is not None and not DNS_SUBDOMAIN.match(stage.service_account_name):
            yield Problem(f"{path[:-5]}.serviceAccountName", f"{stage.service_account_name!r} is not a valid "
                          "ServiceAccount name", "use lowercase letters, digits, '-' and '.'")
        if len(name) + 1 + len(stage.name) > grammar.JOB_NAME_BUDGET:
            yield Problem(path, f"pipeline and stage names are {len(name) + 1 + len(stage.name)} characters together; "
                          f"Job names allow {grammar.JOB_NAME_BUDGET}", "shorten the pipeline or the stage name")
        outs: set[str] = set()
        for j, out in enumerate(stage.output_names):
            if not FILE_NAME.match(out):
                yield Problem(f"spec.stages[{i}].outputs[{j}]", f"{out!r} is not a valid output name",
                              "use letters, digits, '_', '.' and '-' (it becomes a file name)")
            if out in outs:
                yield Problem(f"spec.stages[{i}].outputs[{j}]", f"duplicate output {out!r}", "name each output once")
            outs.add(out)
        ins: set[str] = set()
        for j, inp in enumerate(stage.inputs):
            if not FILE_NAME.match(inp.name):
                yield Problem(f"spec.stages[{i}].inputs[{j}].name", f"{inp.name!r} is not a valid input name",
                              "use letters, digits, '_', '.' and '-' (it becomes a file name)")
            if inp.name in ins:
                yield Problem(f"spec.stages[{i}].inputs[{j}].name", f"duplicate input {inp.name!r}",
                              "name each input once")
            ins.add(inp.name)


def _check_stage_fields(spec: models.Spec) -> Iterable[Problem]:
    for i, stage in enumerate(spec.stages):
        base = f"spec.stages[{i}]"
        if not stage.image.strip():
            yield Problem(f"{base}.image", "image is empty", "set a container image, e.g. tycho/stage-cpu:0.1.0")
        if not stage.command:
            yield Problem(f"{base}.command", "command is empty", "give the command to run, e.g. [python, train.py]")
        yield from _check_resources(stage.resources, f"{base}.resources")
        yield from _check_sweep(stage, base)
        if stage.resources.gpu is not None and stage.resources.gpu.count < 1:
            yield Problem(f"{base}.resources.gpu.count", "must be at least 1", "remove gpu or set count >= 1")
        for j, env in enumerate(stage.env):
            path = f"{base}.env[{j}]"
            if not ENV_NAME.match(env.name):
                yield Problem(f"{path}.name", f"{env.name!r} is not a valid variable name",
                              "use [A-Za-z_][A-Za-z0-9_]*")
            if env.name.startswith(RESERVED_ENV_PREFIX):
                yield Problem(f"{path}.name", f"{env.name!r} uses the reserved prefix TYCHO_", "rename the variable")
            if (env.value is None) == (env.value_from is None):
                yield Problem(path, "needs exactly one of value and valueFrom", "set value, or valueFrom.secretKeyRef")
        for key, value in stage.params.items():
            if isinstance(value, list) and len({type(v) for v in value}) > 1:
                yield Problem(f"{base}.params.{key}",
                              "list mixes types " + ", ".join(sorted({type(v).__name__ for v in value})),
                              "make every element the same type")
        for j, inp in enumerate(stage.inputs):
            path = f"{base}.inputs[{j}]"
            if (inp.from_ is None) == (inp.url is None):
                yield Problem(path, "needs exactly one of from and url",
                              "use from: STAGE/OUTPUT for a stage output, or url: for external data")
            if inp.sha256 is not None and not SHA256.match(inp.sha256):
                yield Problem(f"{path}.sha256", "not a sha256 hex digest", "give 64 lowercase hex digits")
            if inp.from_ is not None and inp.sha256 is not None:
                yield Problem(f"{path}.sha256", "sha256 applies to url inputs only", "remove it")


_UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


def quantity_value(value: models.Quantity) -> float | None:
    """A positive Kubernetes quantity as a number (None when it is not one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if value > 0 else None
    match = QUANTITY.match(value)
    if not match:
        return None
    number, suffix = float(match.group(1)), str(match.group(3) or "")
    scaled = number * 10.0 ** int(suffix[1:]) if suffix.startswith("e") else number * _UNITS.get(suffix, 1.0)
    return scaled if scaled > 0 else None


def _check_resources(res: models.Resources, base: str) -> Iterable[Problem]:
    fields: tuple[Literal["cpu", "memory"], ...] = ("cpu", "memory")
    for field in fields:
        for path, value in ((f"{base}.{field}", getattr(res, field)),
                            (f"{base}.requests.{field}", getattr(res.requests, field) if res.requests else None),
                            (f"{base}.limits.{field}", getattr(res.limits, field) if res.limits else None)):
            if value is not None and quantity_value(value) is None:
                yield Problem(path, f"{value!r} is not a positive Kubernetes quantity", QUANTITY_FIX)
        both = getattr(res, field) is not None and any(
            part is not None and getattr(part, field) is not None for part in (res.requests, res.limits))
        if both:
            yield Problem(f"{base}.{field}", f"{field} is given both as a shorthand and in requests/limits",
                          f"use either {field}: (request = limit) or requests/limits, not both")
        request, limit = res.request(field), res.limit(field)
        r, lim = (quantity_value(request) if request is not None else None,
                  quantity_value(limit) if limit is not None else None)
        if r is not None and lim is not None and r > lim:
            yield Problem(f"{base}.requests.{field}", f"request {request} is above the limit {limit}",
                          "lower the request or raise the limit")


def _check_sweep(stage: models.Stage, base: str) -> Iterable[Problem]:
    sweep = stage.sweep
    if sweep is None:
        return
    path = f"{base}.sweep"
    if not sweep.parameters:
        yield Problem(f"{path}.parameters", "no parameters to sweep", "name at least one param with values or low/high")
    for name, p in sweep.parameters.items():
        where = f"{path}.parameters.{name}"
        ranged = p.low is not None or p.high is not None
        if (p.values is None) == (not ranged):
            yield Problem(where, "needs either values or low and high", "give values: [...] or low: and high:")
            continue
        if p.values is not None and not p.values:
            yield Problem(f"{where}.values", "is empty", "list at least one value")
        if ranged:
            if p.low is None or p.high is None:
                yield Problem(where, "a range needs both low and high", "give both")
            elif p.low >= p.high:
                yield Problem(where, f"low {p.low:g} is not below high {p.high:g}", "make low < high")
            elif p.log and p.low <= 0:
                yield Problem(f"{where}.low", "a log range needs low > 0", "raise low above 0 or set log: false")
            elif p.type == "int" and (p.low != int(p.low) or p.high != int(p.high)):
                yield Problem(where, "an int range needs whole-number bounds", "use whole numbers or type: float")
        current = stage.params.get(name)
        if current is not None and p.values is not None and any(not same_type(current, v) for v in p.values):
            yield Problem(f"{where}.values", f"values are not all {type(current).__name__}, the type of "
                          f"params.{name}", f"give {type(current).__name__} values")
    if sweep.algorithm == "grid":
        if any(p.values is None for p in sweep.parameters.values()):
            yield Problem(f"{path}.algorithm", "grid search needs values for every parameter",
                          "give values lists, or use algorithm: random or tpe for ranges")
        else:
            size = 1
            for p in sweep.parameters.values():
                size *= len(p.values or [])
            if sweep.trials > size:
                yield Problem(f"{path}.trials", f"{sweep.trials} trials but the grid has {size} points",
                              f"set trials <= {size}")
    if not sweep.objective.metric.strip():
        yield Problem(f"{path}.objective.metric", "is empty", "name the metric the stage reports, e.g. val_accuracy")


def _check_graph(spec: models.Spec) -> Iterable[Problem]:
    outputs = {s.name: set(s.output_names) for s in spec.stages}
    for i, stage in enumerate(spec.stages):
        for j, inp in enumerate(stage.inputs):
            if inp.from_ is None:
                continue
            path = f"spec.stages[{i}].inputs[{j}].from"
            ref_stage, _, ref_out = inp.from_.partition("/")
            if not ref_out:
                yield Problem(path, f"{inp.from_!r} is not STAGE/OUTPUT", "write it as STAGE/OUTPUT, e.g. split/splits")
            elif ref_stage not in outputs:
                yield Problem(path, f"unknown stage {ref_stage!r}",
                              "use one of: " + ", ".join(sorted(outputs)))
            elif ref_out not in outputs[ref_stage]:
                yield Problem(path, f"stage {ref_stage!r} has no output {ref_out!r}",
                              "use one of: " + (", ".join(sorted(outputs[ref_stage])) or "(it declares no outputs)"))
            elif ref_stage == stage.name:
                yield Problem(path, "a stage cannot read its own output", "read it from an earlier stage")
    cycle = dag.find_cycle(dag.edges(spec))
    if cycle:
        yield Problem("spec.stages", "cycle: " + " -> ".join(cycle),
                      "remove one of these inputs so the stages form a DAG")


def check(doc: Mapping[str, Any]) -> models.ExperimentPipeline:
    """Validate a manifest (already parsed YAML). Raises InvalidManifest with all problems."""
    if not isinstance(doc, Mapping):
        raise InvalidManifest([Problem("(document)", "not a mapping", "write an ExperimentPipeline manifest")])
    stages = doc.get("spec", {}).get("stages") if isinstance(doc.get("spec"), Mapping) else None
    if isinstance(stages, list) and len(stages) > grammar.MAX_STAGES:  # refused before building any of them
        raise InvalidManifest([Problem("spec.stages", f"{len(stages)} stages; a pipeline has at most "
                                       f"{grammar.MAX_STAGES}", STAGES_FIX)])
    try:
        pipeline = models.ExperimentPipeline.model_validate(doc)
    except pydantic.ValidationError as err:
        raise InvalidManifest(_from_pydantic(err)) from None
    problems = list(_check_names(pipeline.spec, pipeline.metadata.name))
    problems += list(_check_stage_fields(pipeline.spec))
    problems += [Problem(*found) for found in references.check(pipeline.spec)]
    if not problems:
        problems += list(_check_graph(pipeline.spec))
    if not pipeline.spec.stages:
        problems.append(Problem("spec.stages", "no stages", "add at least one stage"))
    if problems:
        raise InvalidManifest(problems)
    return pipeline


def load_text(text: str) -> models.ExperimentPipeline:
    """Parse and validate a manifest's YAML text."""
    with _no_gc_pauses():
        return _load_text(text)


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Building a large manifest allocates hundreds of thousands of objects and none die:
    the cyclic garbage collector's full passes would make loading quadratic."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_text(text: str) -> models.ExperimentPipeline:
    try:
        doc = yamlload.load(text)
    except yamlload.Unreadable as err:
        raise InvalidManifest([Problem("(document)", str(err), "write a plain ExperimentPipeline manifest")]) from None
    except yaml.YAMLError as err:
        said = problems_mod.escape(" ".join(str(err).split()))
        raise InvalidManifest([Problem("(document)", f"not valid YAML: {said}",
                                       "fix the YAML syntax")]) from None
    return check(doc)


def load_bytes(data: bytes) -> models.ExperimentPipeline:
    """Parse and validate a manifest file's bytes (which must be UTF-8)."""
    try:
        text = yamlload.decode(data)
    except yamlload.Unreadable as err:
        raise InvalidManifest([Problem("(document)", str(err), "save the manifest as UTF-8")]) from None
    return load_text(text)


def same_type(current: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``current`` (a sweep value, a ``--set``): ints for floats too."""
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, (int, float))
    if isinstance(current, list):
        return isinstance(value, list)
    return type(current) is type(value)
