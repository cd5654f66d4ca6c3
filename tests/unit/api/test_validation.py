"""Every bad manifest in the corpus is rejected with the message its header expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tycho.api import problems, validation

CORPUS = sorted((Path(__file__).parent / "bad_manifests").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[3]


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} has no '# expect:' header"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_manifest_is_rejected_with_its_field_path_and_fix(path: Path) -> None:
    with pytest.raises(problems.InvalidManifest) as caught:
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
    with pytest.raises(problems.InvalidManifest) as caught:
        validation.load_text(text)
    assert {p.path for p in caught.value.problems} == {"spec.stages[0].resources.cpu",
                                                        "spec.stages[0].resources.memory"}


