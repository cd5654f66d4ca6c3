"""``--set`` overrides of a manifest's params, in the grammar ML people know from Hydra.

``STAGE.PARAM=VALUE`` changes a param the stage declares, keeping its type;
``+STAGE.PARAM=VALUE`` adds a param the stage does not declare yet (a typo in a plain
``--set`` is an error that lists the stage's params, never a silently added param);
``STAGE.sweep.trials=N`` (also ``parallelism``, ``seed``) changes a sweep. Values are YAML
scalars or lists (``5``, ``0.1``, ``true``, ``[1, 2]``, ``'a b'``). Every problem names the
override and the fix; the result is validated again as a whole manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import yaml

from tycho.api import grammar, models, problems as problems_mod, validation
from tycho.api.problems import InvalidManifest, Problem

SWEEP_FIELDS = ("trials", "parallelism", "seed")
PARAM_NAME = grammar.regex(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
"""The sweep settings ``--set STAGE.sweep.FIELD=N`` may change."""


@dataclasses.dataclass(frozen=True)
class Override:
    """One parsed ``--set`` item."""

    text: str
    stage: str
    param: str
    raw: str
    add: bool
    """``+STAGE.PARAM``: add a param the stage does not declare."""

    @property
    def where(self) -> str:
        return f"--set {self.text}"


def parse(items: Sequence[str]) -> list[Override]:
    """``STAGE.PARAM=VALUE`` items as typed; raises InvalidManifest naming each bad one."""
    parsed, problems = [], []
    for item in items:
        target, eq, raw = item.partition("=")
        add = target.startswith("+")
        stage, dot, param = target.removeprefix("+").partition(".")
        if not eq or not dot or not stage or not param:
            problems.append(Problem(f"--set {problems_mod.escape(item)}", "not STAGE.PARAM=VALUE",
                                    "write e.g. --set train.epochs=5 (or +train.new_param=5 to add a param)"))
            continue
        if not PARAM_NAME.match(param):
            problems.append(Problem(f"--set {problems_mod.escape(item)}", f"{problems_mod.escape(param)!r} is not a "
                                    "param name", "use letters, digits, '_', '.' and '-'"))
            continue
        parsed.append(Override(item, stage, param, raw, add))
    if problems:
        raise InvalidManifest(problems)
    return parsed


def _value(o: Override) -> Any:
    if not o.raw.strip():
        return ""
    try:
        value = yaml.safe_load(o.raw)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem", None) or "unreadable"
        raise ValueError(f"{o.raw!r} is not a YAML value ({mark})") from None
    if isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return value
    if isinstance(value, list):
        raise ValueError(f"{o.raw!r} is a list holding lists or objects; a param list holds values only")
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{o.raw!r} is a {type(value).__name__}, not a param value")
    return value


def apply(pipeline: models.ExperimentPipeline, items: Sequence[str]) -> models.ExperimentPipeline:
    """The pipeline with ``items`` applied; raises InvalidManifest with every problem."""
    overrides = parse(items)
    problems: list[Problem] = []
    updated = pipeline.model_copy(deep=True)
    stages = {s.name: s for s in updated.spec.stages}
    for o in overrides:
        stage = stages.get(o.stage)
        if stage is None:
            problems.append(Problem(o.where, f"unknown stage {o.stage!r}",
                                    "use STAGE.PARAM=VALUE with one of: " + ", ".join(stages)))
            continue
        try:
            value = _value(o)
        except ValueError as bad:
            problems.append(Problem(o.where, str(bad), "give a number, true/false, a string (quote it if it has "
                                    "spaces or brackets) or a [list]"))
            continue
        if o.param.startswith("sweep.") and not o.add:
            problems.extend(_sweep(stage, o, value))
            continue
        current = stage.params.get(o.param)
        if current is None and not o.add:
            known = ", ".join(sorted(stage.params)) or "(it declares none)"
            problems.append(Problem(o.where, f"stage {o.stage!r} has no param {o.param!r}; its params: {known}",
                                    f"fix the name, or add a new param with --set +{o.stage}.{o.param}={o.raw}"))
            continue
        if current is not None and o.add:
            problems.append(Problem(o.where, f"stage {o.stage!r} already has param {o.param!r}",
                                    f"change it with --set {o.stage}.{o.param}={o.raw} (no +)"))
            continue
        if current is not None and not validation.same_type(current, value):
            problems.append(Problem(o.where, f"expected {type(current).__name__}, got {value!r}",
                                    f"give a {type(current).__name__} value like {current!r}"))
            continue
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        stage.params[o.param] = value
    if problems:
        raise InvalidManifest(problems)
    return validation.check(updated.model_dump(by_alias=True, exclude_none=True))


def _sweep(stage: models.Stage, o: Override, value: Any) -> list[Problem]:
    field = o.param.removeprefix("sweep.")
    if stage.sweep is None:
        return [Problem(o.where, f"stage {o.stage!r} has no sweep", "override params with STAGE.PARAM=VALUE")]
    if field not in SWEEP_FIELDS:
        return [Problem(o.where, f"{field!r} is not a sweep setting that can be overridden",
                        "use " + ", ".join(f"{o.stage}.sweep.{f}" for f in SWEEP_FIELDS))]
    if isinstance(value, bool) or not isinstance(value, int):
        return [Problem(o.where, f"expected a whole number, got {value!r}", "give a whole number")]
    setattr(stage.sweep, field, value)
    return []
