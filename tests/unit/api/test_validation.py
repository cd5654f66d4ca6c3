"""Every bad manifest in the corpus is rejected with the message its header expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tycho.api import validation

CORPUS = sorted((Path(__file__).parent / "bad_manifests").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[3]


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} has no '# expect:' header"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_manifest_is_rejected_with_its_field_path_and_fix(path: Path) -> None:
    with pytest.raises(validation.InvalidManifest) as caught:
        validation.load_text(path.read_text())
    messages = [str(p) for p in caught.value.problems]
    assert any(expected(path) in m for m in messages), messages
    assert all("(fix: " in m for m in messages)


def test_corpus_covers_the_required_kinds_of_mistake() -> None:
    names = {p.stem for p in CORPUS}
    assert {"cycle", "unknown_stage", "unknown_output", "duplicate_stage", "invalid_stage_name", "bad_cpu",
            "param_object", "missing_image", "unknown_field"} <= names


def test_reference_pipeline_is_valid() -> None:
    pipeline = validation.load_text((REPO / "pipelines" / "digits.yaml").read_text())
    assert [s.name for s in pipeline.spec.stages] == [
        "download", "split", "train", "tune", "calibrate", "evaluate", "release"]


def test_all_problems_are_reported_at_once() -> None:
    text = (Path(__file__).parent / "bad_manifests" / "bad_cpu.yaml").read_text()
    text = text.replace("resources: {cpu: two}", "resources: {cpu: two, memory: lots}")
    with pytest.raises(validation.InvalidManifest) as caught:
        validation.load_text(text)
    assert {p.path for p in caught.value.problems} == {"spec.stages[0].resources.cpu", "spec.stages[0].resources.memory"}


TOY = (REPO / "tests" / "fixtures" / "toy" / "toy.yaml").read_text().replace("NOTES_URL", "file:///tmp/notes.txt")


def test_override_keeps_the_declared_type() -> None:
    pipeline = validation.load_text(TOY)
    changed = validation.apply_overrides(pipeline, {"generate.count": "9"})
    assert changed.spec.stages[0].params["count"] == 9
    assert pipeline.spec.stages[0].params["count"] == 5  # the original is untouched


def test_override_with_a_value_of_another_type_is_refused() -> None:
    pipeline = validation.load_text(TOY)
    with pytest.raises(validation.InvalidManifest, match=r"--set generate.count: expected int, got 'nine'"):
        validation.apply_overrides(pipeline, {"generate.count": "nine"})


def test_override_of_unknown_stage_names_the_stages() -> None:
    pipeline = validation.load_text(TOY)
    with pytest.raises(validation.InvalidManifest, match="generate, total, report"):
        validation.apply_overrides(pipeline, {"nope.x": "1"})


def test_int_override_of_float_param_becomes_float() -> None:
    text = TOY.replace("scale: 2,", "scale: 2.5,")
    assert text != TOY
    changed = validation.apply_overrides(validation.load_text(text), {"generate.scale": "3"})
    assert changed.spec.stages[0].params["scale"] == 3.0
    assert isinstance(changed.spec.stages[0].params["scale"], float)
