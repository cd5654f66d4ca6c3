"""``--set`` overrides: types kept, typos refused with the stage's params, ``+`` adds, every
problem names the override instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from tycho.api import overrides, problems, validation

REPO = Path(__file__).resolve().parents[3]
TOY = (REPO / "tests" / "fixtures" / "toy" / "toy.yaml").read_text().replace("NOTES_URL", "file:///tmp/notes.txt")


def problems_of(*items: str, text: str = TOY) -> list[str]:
    with pytest.raises(problems.InvalidManifest) as caught:
        overrides.apply(validation.load_text(text), items)
    return [str(p) for p in caught.value.problems]


def test_an_override_keeps_the_declared_type_and_leaves_the_original_alone() -> None:
    pipeline = validation.load_text(TOY)
    changed = overrides.apply(pipeline, ["generate.count=9"])
    assert changed.spec.stages[0].params["count"] == 9
    assert pipeline.spec.stages[0].params["count"] == 5


def test_a_value_of_another_type_is_refused() -> None:
    assert problems_of("generate.count=nine") == [
        "--set generate.count=nine: expected int, got 'nine' (fix: give a int value like 5)"]


def test_a_misspelt_param_is_refused_naming_the_stage_s_params_and_how_to_add_one() -> None:
    (problem,) = problems_of("generate.cont=9")
    assert "stage 'generate' has no param 'cont'; its params: count, nondeterministic, scale" in problem
    assert "--set +generate.cont=9" in problem


def test_a_plus_adds_a_new_param_but_not_one_that_exists() -> None:
    changed = overrides.apply(validation.load_text(TOY), ["+generate.shards=3"])
    assert changed.spec.stages[0].params["shards"] == 3
    (problem,) = problems_of("+generate.count=3")
    assert "already has param 'count'" in problem and "--set generate.count=3" in problem


def test_an_unknown_stage_names_the_stages() -> None:
    (problem,) = problems_of("nope.x=1")
    assert "unknown stage 'nope'" in problem and "generate, total, report" in problem


@pytest.mark.parametrize("item", ["generate.count", "count=5", ".count=5", "generate.=5", "=5"])
def test_an_item_that_is_not_stage_param_value_is_named(item: str) -> None:
    (problem,) = problems_of(item)
    assert problem.startswith(f"--set {item}: not STAGE.PARAM=VALUE")


@pytest.mark.parametrize("raw", ["[", "{a: 1}", "'unclosed", "[1, {a: 2}]", "null"])
def test_a_value_yaml_cannot_read_or_that_is_no_param_value_is_named(raw: str) -> None:
    (problem,) = problems_of(f"+generate.extra={raw}")
    assert problem.startswith(f"--set +generate.extra={raw}: ") and "Traceback" not in problem


def test_an_int_for_a_float_param_becomes_a_float() -> None:
    text = TOY.replace("scale: 2,", "scale: 2.5,")
    changed = overrides.apply(validation.load_text(text), ["generate.scale=3"])
    assert changed.spec.stages[0].params["scale"] == 3.0 and isinstance(changed.spec.stages[0].params["scale"], float)


def test_every_problem_is_reported_at_once() -> None:
    assert len(problems_of("generate.cont=1", "nope.x=1", "generate.count=x")) == 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30) | st.from_regex(r"\+?(generate|total|nope)\.[a-z._]{0,12}=.{0,12}",
                                                     fullmatch=True), max_size=4))
def test_any_set_items_apply_or_name_each_bad_one(items: list[str]) -> None:
    pipeline = validation.load_text(TOY)
    try:
        overrides.apply(pipeline, items)
    except problems.InvalidManifest as bad:
        assert bad.problems and all(p.path and p.fix for p in bad.problems)
