"""The reference pipeline end to end through the CLI, as a user runs it (small epochs).

One store for the module: the first run records everything, then the all-hits rerun,
``explain`` after a param change, ``lineage`` and a bit-identical ``reproduce`` use it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "pipelines" / "digits.yaml"
SMALL = ["--set", "train.epochs=4", "--set", "tune.epochs=4", "--set", "tune.sweep.trials=3",
         "--set", "tune.sweep.parallelism=3",
         "--set", "release.threshold=0.5"]
STAGES = ["download", "split", "train", "tune", "calibrate", "evaluate", "release"]


def tycho(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tycho")
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"tycho {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("digits")


@pytest.fixture(scope="module")
def store(workdir: Path) -> str:
    return f"file://{workdir / 'store'}"


@pytest.fixture(scope="module")
def first_run(workdir: Path, store: str) -> dict[str, Any]:
    proc = tycho("run", str(MANIFEST), "--json", "--store", store, *SMALL, cwd=workdir)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_first_run_executes_all_stages_and_records_each(first_run: dict[str, Any], workdir: Path) -> None:
    assert first_run["phase"] == "Succeeded"
    assert set(first_run["stages"]) == set(STAGES)
    for name, stage in first_run["stages"].items():
        assert stage["cacheHit"] is False, name
        assert stage["record"], name
        assert stage["record"].startswith(f"records/{first_run['runId']}/{name}")  # relative to the store
        doc = json.loads((workdir / "store" / stage["record"]).read_text())
        assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
        assert {s["name"]: s["digest"]["sha256"] for s in doc["subject"]} == stage["outputs"]
    evaluate = first_run["stages"]["evaluate"]
    assert set(evaluate["outputs"]) >= {"report_html", "report_ipynb", "confusion_matrix", "reliability_diagram"}
    assert 0.5 <= evaluate["metrics"]["test_accuracy"] <= 1.0
    assert first_run["stages"]["train"]["metrics"]  # training curves were reported


def test_records_name_the_python_distributions_each_stage_imported(first_run: dict[str, Any], workdir: Path) -> None:
    def environment(stage: str) -> dict[str, Any]:
        doc = json.loads((workdir / "store" / first_run["stages"][stage]["record"]).read_text())
        env = next(b for b in doc["predicate"]["runDetails"]["byproducts"] if b["name"] == "environment")
        found: dict[str, Any] = json.loads((workdir / "store" / "objects" / "sha256" / env["digest"]["sha256"])
                                           .read_text())
        return found

    train = environment("train")
    dists = train["distributions"]
    assert {"numpy", "tensorflow-cpu"} <= set(dists) or {"numpy", "tensorflow"} <= set(dists)
    assert "mypy" not in dists and "pytest" not in dists  # installed, but the stage never imported them
    assert "papermill" in environment("evaluate")["distributions"]
    facts = train["execution"]
    assert (facts["cpu"] and facts["determinism"]["PYTHONHASHSEED"] == "0"
            and facts["determinism"]["TF_DETERMINISTIC_OPS"] == "1")
    assert facts["frameworks"]["tensorflow"]["version"] == dists.get("tensorflow-cpu", dists.get("tensorflow"))


def test_second_run_is_all_hits(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    again = json.loads(tycho("run", str(MANIFEST), "--json", "--store", store, *SMALL, cwd=workdir).stdout)
    assert {s["cacheHit"] for s in again["stages"].values()} == {True}
    assert {n: s["outputs"] for n, s in again["stages"].items()} == {
        n: s["outputs"] for n, s in first_run["stages"].items()}


def test_explain_after_a_param_change_names_the_param(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    args = [a.replace("train.epochs=4", "train.epochs=5") for a in SMALL]
    rows = json.loads(tycho("explain", str(MANIFEST), "--json", "--store", store, *args, cwd=workdir).stdout)["stages"]
    by_stage = {r["stage"]: r for r in rows}
    assert by_stage["download"]["action"] == "hit" and by_stage["tune"]["action"] == "hit"
    assert by_stage["train"]["action"] == "run"
    assert by_stage["train"]["changed"] == ["params.epochs: 4 -> 5"]
    assert by_stage["evaluate"]["action"] == "wait"


def test_lineage_of_the_release_reaches_the_download(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    ref = f"{first_run['runId']}/release/registry_entry"
    steps = json.loads(tycho("lineage", ref, "--json", "--store", store, cwd=workdir).stdout)["steps"]
    stages = [s["stage"] for s in steps if s["kind"] == "stage"]
    assert stages[0] == "release" and stages[-1] == "download"
    assert set(stages) == set(STAGES)  # via evaluate, the baseline (train) is in it too


def test_reproduce_is_bit_identical(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    proc = tycho("reproduce", first_run["runId"], "--json", "--store", store, cwd=workdir, check=False)
    result = json.loads(proc.stdout)
    differing = [f"{o['stage']}/{o['output']}" for o in result["outputs"] if not o["identical"]]
    assert differing == [] and proc.returncode == 0, differing
    assert len(result["outputs"]) == sum(len(s["outputs"]) for s in first_run["stages"].values())


def test_tune_is_a_sweep_whose_best_trial_feeds_calibrate(first_run: dict[str, Any], workdir: Path) -> None:
    summary = json.loads((workdir / "store" / "runs" / f"{first_run['runId']}.json").read_text())
    tune = summary["stages"]["tune"]
    assert len(tune["trials"]) == 3 and all(t["phase"] == "Succeeded" for t in tune["trials"])
    best = tune["trials"][tune["selection"]["trial"]]
    assert best["objective"] == max(t["objective"] for t in tune["trials"])
    assert tune["outputs"] == best["outputs"] == first_run["stages"]["tune"]["outputs"]
    calibrate = json.loads((workdir / "store" / first_run["stages"]["calibrate"]["record"]).read_text())
    model = next(d for d in calibrate["predicate"]["buildDefinition"]["resolvedDependencies"]
                 if d["name"] == "input:model")
    assert model["digest"]["sha256"] == best["outputs"]["model"]
def test_verify_passes_on_the_digits_store(first_run: dict[str, Any], workdir: Path, store: str) -> None:
    proc = tycho("verify", "--all", "--json", "--store", store, cwd=workdir, check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["problems"] == [], report["problems"]
    assert report["checked"]["records"] >= len(STAGES)


def test_verify_names_every_file_of_the_digits_store_when_one_byte_flips(first_run: dict[str, Any], workdir: Path,
                                                                         store: str) -> None:
    from tycho.provenance import audit, store as store_mod
    from tycho.reports import verify

    root = workdir / "store"
    keys = audit.file_keys([workdir / ".tycho" / "signing.key"])
    stored = store_mod.Store(store)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size)
    assert len(files) > 50
    missed = []
    for i, path in enumerate(files):
        rel = path.relative_to(root).as_posix()
        original = path.read_bytes()
        changed = bytearray(original)
        changed[(i * 7919) % len(original)] ^= 0x01
        path.chmod(0o644)
        path.write_bytes(bytes(changed))
        try:
            problems = verify.verify(stored, None, keys).problems
        finally:
            path.write_bytes(original)
        if not any(p.startswith(rel + ":") or f" {rel}" in p for p in problems):
            missed.append((rel, problems[:3]))
    assert missed == []
    assert verify.verify(stored, None, keys).problems == []
