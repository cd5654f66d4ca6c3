"""The reference pipeline in real containers: `tycho run pipelines/digits.yaml --executor
container` (small settings) with podman, then an all-hits rerun, a bit-identical
`tycho reproduce --executor container` and `tycho verify`. Slow (two cold runs of
TensorFlow training in containers, about 2 minutes each on 2 cores): marked e2e."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tycho.provenance import record

from ..images import _images
from .test_executor import tycho

pytestmark = [pytest.mark.images, pytest.mark.e2e, pytest.mark.timeout(1800)]
MANIFEST = _images.REPO / "pipelines" / "digits.yaml"
SMALL = ["--set", "train.epochs=2", "--set", "tune.epochs=2", "--set", "tune.sweep.trials=2",
         "--set", "tune.sweep.parallelism=2", "--set", "release.threshold=0.5"]
CONTAINER = ["--executor", "container", "--engine", "podman"]
STAGES = ["download", "split", "train", "tune", "calibrate", "evaluate", "release"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("digits-containers")


@pytest.fixture(scope="module")
def store(workdir: Path) -> str:
    return f"file://{workdir / 'store'}"


@pytest.fixture(scope="module")
def first_run(stage_image: str, workdir: Path, store: str) -> dict[str, Any]:
    proc = tycho("run", str(MANIFEST), "--json", "--store", store, *SMALL, *CONTAINER, cwd=workdir)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _record(workdir: Path, rel: str) -> dict[str, Any]:
    return json.loads((workdir / "store" / rel).read_text())  # type: ignore[no-any-return]


def test_digits_completes_in_containers_and_every_record_names_the_image_and_its_sbom(
        first_run: dict[str, Any], workdir: Path, stage_image: str) -> None:
    assert first_run["phase"] == "Succeeded", {n: s["message"] for n, s in first_run["stages"].items()}
    assert set(first_run["stages"]) == set(STAGES)
    records = [_record(workdir, s["record"]) for s in first_run["stages"].values()]
    summary = json.loads((workdir / "store" / "runs" / f"{first_run['runId']}.json").read_text())
    records += [_record(workdir, t["record"]) for t in summary["stages"]["tune"]["trials"]]
    sboms = set()
    for doc in records:
        image = next(d for d in record.dependencies(doc) if d["name"] == "image")
        assert image["digest"]["sha256"] == stage_image.removeprefix("sha256:")
        assert image["annotations"]["resolvedBy"] == "podman"
        sboms.add(record.image_sbom(doc))
    assert len(sboms) == 1 and None not in sboms  # one image, one SBOM, named by every record
    assert 0.5 <= first_run["stages"]["evaluate"]["metrics"]["test_accuracy"] <= 1.0


def test_a_second_run_is_all_hits(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    again = json.loads(tycho("run", str(MANIFEST), "--json", "--store", store, *SMALL, *CONTAINER, cwd=workdir).stdout)
    assert {s["cacheHit"] for s in again["stages"].values()} == {True}


def test_reproduce_in_containers_is_bit_identical(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    proc = tycho("reproduce", first_run["runId"], "--json", "--store", store, *CONTAINER, cwd=workdir, check=False)
    result = json.loads(proc.stdout)
    differing = [f"{o['stage']}/{o['output']}" for o in result["outputs"] if not o["identical"]]
    assert differing == [] and proc.returncode == 0, (differing, result.get("problems"), proc.stderr[-3000:])
    assert len(result["outputs"]) == sum(len(s["outputs"]) for s in first_run["stages"].values())


def test_verify_passes(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    proc = tycho("verify", "--all", "--json", "--store", store, cwd=workdir, check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["problems"] == [], report["problems"]
    assert report["checked"]["records"] >= len(STAGES) + 1
