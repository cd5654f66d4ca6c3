"""Every bad input gets a clear error with its field path; nothing crashes. Property tests
(Hypothesis) throw arbitrary text and arbitrarily damaged manifests at the loader and the
validator: the only way out is a valid pipeline or ``InvalidManifest``."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from tycho.api import grammar, problems, validation, yamlload

REPO = Path(__file__).resolve().parents[3]
TOY = yaml.safe_load((REPO / "tests" / "fixtures" / "toy" / "toy.yaml").read_text()
                     .replace("NOTES_URL", "file:///tmp/notes.txt"))


def chain(n: int, reverse: bool) -> dict[str, Any]:
    stages = [{"name": f"s{i}", "image": "img:1", "command": ["x"], "outputs": ["o"],
               **({"inputs": [{"name": "i", "from": f"s{i - 1}/o"}]} if i else {})} for i in range(n)]
    return {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline", "metadata": {"name": "long"},
            "spec": {"stages": stages[::-1] if reverse else stages}}


def cli(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "m.yaml"
    path.write_bytes(data)
    return subprocess.run([sys.executable, "-m", "tycho", "validate", str(path)], capture_output=True, text=True,
                          timeout=120)


def test_a_file_that_is_not_utf8_is_one_error_with_the_offset(tmp_path: Path) -> None:
    proc = cli(tmp_path, b"apiVersion: tycho.dev/v1alpha1\nkind: \xff\xfe\n")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not UTF-8 text: byte 0xff at offset 37" in proc.stderr


def test_the_largest_pipeline_the_api_server_takes_validates_listed_in_reverse() -> None:
    pipeline = validation.check(chain(grammar.MAX_STAGES, reverse=True))
    assert len(pipeline.spec.stages) == grammar.MAX_STAGES


def test_a_10000_stage_manifest_is_refused_naming_spec_stages(tmp_path: Path) -> None:
    proc = cli(tmp_path, yaml.safe_dump(chain(10_000, reverse=True)).encode())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error ") == 1, proc.stderr
    assert f"spec.stages: 10000 stages; a pipeline has at most {grammar.MAX_STAGES}" in proc.stderr


def test_markup_in_names_is_echoed_as_written_never_interpreted(tmp_path: Path) -> None:
    doc = copy.deepcopy(TOY)
    doc["spec"]["stages"][0]["name"] = "[bold red]x[/] :smile: \x1b[31m"
    proc = cli(tmp_path, yaml.safe_dump(doc).encode())
    assert proc.returncode == 2
    assert "'[bold red]x[/] :smile: \\x1b[31m' is not a valid DNS-1123 label" in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stderr and "😄" not in proc.stderr


def test_aliases_within_reason_still_load() -> None:
    text = (REPO / "tests" / "fixtures" / "toy" / "toy.yaml").read_text().replace("NOTES_URL", "file:///n")
    text = text.replace("  owner: tests", "  owner: &who tests\n  description: *who")
    assert validation.load_text(text).spec.description == "tests"


@pytest.mark.parametrize("text, message", [
    ("a: " + "[" * 5000 + "]" * 5000, "nest"),
    ("a: &a [*a]", "recursive"),
    ("- &x [1]\n- &y [*x, *x]\n" + "".join(f"- &{c}{i} [" + ", ".join([f"*{p}"] * 20) + "]\n"
                                        for i, (c, p) in enumerate([("z", "y"), ("w", "z0"), ("v", "w1"), ("u", "v2"),
                                                                    ("t", "u3")])), "alias bomb"),
])
def test_hostile_yaml_is_refused_before_anything_walks_it(text: str, message: str) -> None:
    with pytest.raises(problems.InvalidManifest) as caught:
        validation.load_text(text)
    assert message in str(caught.value)


def test_libyaml_is_used_where_pyyaml_has_it() -> None:
    assert yamlload.Loader is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---- properties --------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths(v, (*prefix, i))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_loads_or_is_invalid(text: str) -> None:
    try:
        validation.load_text(text)
    except problems.InvalidManifest as bad:
        assert bad.problems and all(p.path and p.fix for p in bad.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damaged_manifest_validates_or_names_its_problems(data: st.DataObject) -> None:
    doc = copy.deepcopy(TOY)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(doc)[1:]))
        value = data.draw(json_values)
        target = doc
        for part in where[:-1]:
            target = target[part]
        target[where[-1]] = value
    try:
        validation.check(doc)
    except problems.InvalidManifest as bad:
        assert bad.problems and all(p.path and p.message and p.fix for p in bad.problems)
