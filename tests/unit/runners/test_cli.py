"""The ``tycho`` command as a user types it: exit codes, output, --json, fast start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.workspace import Workspace


def tycho(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tycho", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_run_then_runs_lists_the_run_with_its_headline_metric(ws: Workspace) -> None:
    first = tycho("run", "toy.yaml", "--store", ws.store_url, "--json", cwd=ws.root)
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["runId"]
    listed = tycho("runs", "--store", ws.store_url, "--json", cwd=ws.root)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["runs"]
    assert row["runId"] == run_id and row["phase"] == "Succeeded" and row["headline"] == {"total": 20.0}
    table = tycho("runs", "--store", ws.store_url, cwd=ws.root)
    assert run_id in table.stdout and "total=20" in table.stdout


IMPORTED = """
import json, sys
from tycho import cli
try:
    code = cli.main(sys.argv[2:])
except SystemExit as done:
    code = done.code
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def imported(*args: str, cwd: Path) -> set[str]:
    """The modules ``tycho ARGS`` imported (it must succeed)."""
    report = cwd / "imported.json"
    proc = subprocess.run([sys.executable, "-c", IMPORTED, str(report), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    done = json.loads(report.read_text())
    assert done["code"] == 0, proc.stderr
    return set(done["modules"])


def test_quick_commands_and_an_all_hits_run_import_only_what_they_use(ws: Workspace) -> None:
    """Start-up time is mostly imports: what a command never uses stays unimported."""
    heavy = {"pydantic", "rich.console", "yaml", "cryptography", "sqlite3", "tycho.api.models"}
    assert heavy & imported("--version", cwd=ws.root) == set()
    first = tycho("run", "toy.yaml", "--store", ws.store_url, cwd=ws.root)
    assert first.returncode == 0, first.stderr
    listing = imported("runs", "--store", ws.store_url, cwd=ws.root)
    assert {"yaml", "cryptography", "tycho.api.models", "tycho.provenance.documents", "fsspec"} & listing == set()
    rerun = imported("run", "toy.yaml", "--store", ws.store_url, cwd=ws.root)
    assert "all 3 stages were cache hits" in tycho("run", "toy.yaml", "--store", ws.store_url, cwd=ws.root).stdout
    # a hit still checks signatures, but needs no general key loader, no stage wrapper, no live table
    assert "cryptography.hazmat.primitives.asymmetric.ed25519" in rerun
    unused = {"cryptography.hazmat.primitives.serialization", "tycho.stage.wrapper", "tycho.stage.supervise",
              "tycho.stage.publish", "tycho.stage.fetch", "rich.live", "optuna",
              "tycho.executors.container"}
    assert unused & rerun == set()


def test_sigterm_cancels_the_run_stops_its_stages_and_the_next_run_resumes(ws: Workspace) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tycho", "run", "toy.yaml", "--store", ws.store_url, "--json",
                             "--set", "+total.pause=60"], cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for_stage(ws.root)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["phase"] == "Cancelled"
    assert {n: s["phase"] for n, s in summary["stages"].items()} == {
        "generate": "Succeeded", "total": "Cancelled", "report": "Skipped"}
    assert not _stage_pids(ws.root), "the stage's process outlived the run"
    listed = json.loads(tycho("runs", "--store", ws.store_url, "--json", cwd=ws.root).stdout)["runs"]
    assert listed[-1]["phase"] == "Cancelled"
    again = json.loads(tycho("run", "toy.yaml", "--store", ws.store_url, "--json", cwd=ws.root).stdout)
    assert {n: s["phase"] for n, s in again["stages"].items()} == {
        "generate": "Cached", "total": "Succeeded", "report": "Succeeded"}


def test_a_run_whose_process_was_killed_shows_as_lost_not_running(ws: Workspace) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tycho", "run", "toy.yaml", "--store", ws.store_url,
                             "--set", "+total.pause=60"], cwd=ws.root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for_stage(ws.root)
    proc.kill()
    proc.wait()
    listed = json.loads(tycho("runs", "--store", ws.store_url, "--json", cwd=ws.root).stdout)["runs"]
    assert listed[-1]["phase"] == "Lost" and "is gone" in listed[-1]["message"]
    deadline = time.monotonic() + 15
    while _stage_pids(ws.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _stage_pids(ws.root), "the stage outlived its SIGKILLed runner"


def test_invalid_input_exits_2_and_names_the_field(ws: Workspace) -> None:
    ws.manifest.write_text(ws.manifest.read_text().replace("from: generate/numbers", "from: nope/numbers"))
    out = tycho("validate", "toy.yaml", cwd=ws.root)
    assert out.returncode == 2 and "spec.stages[1].inputs[0].from: unknown stage 'nope'" in out.stderr


def _stage_pids(root: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if "total.py" in cmd and cwd.startswith(str(root)):
                pids.append(int(entry.name))
    return pids


def _wait_for_stage(root: Path) -> None:
    """Until the toy's total stage (paused) runs under ``root``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _stage_pids(root):
        time.sleep(0.2)
    assert _stage_pids(root), "the total stage never started"


def test_checks_are_recorded_and_listed_a_warning_passes_a_failure_fails_with_its_code(ws: Workspace) -> None:
    warned = tycho("run", "toy.yaml", "--store", ws.store_url, "--json", "--set", "+generate.check=warn", cwd=ws.root)
    assert warned.returncode == 0, warned.stderr
    run_id = json.loads(warned.stdout)["runId"]
    listed = tycho("checks", run_id, "--store", ws.store_url, "--json", cwd=ws.root)
    assert listed.returncode == 0
    (check,) = json.loads(listed.stdout)["checks"]
    assert check == {"code": "TOY-COUNT", "severity": "warn", "message": "count is 5", "details": {"count": 5},
                     "stage": "generate"}
    shown = tycho("show", run_id, "--store", ws.store_url, cwd=ws.root)
    assert "TOY-COUNT" in shown.stdout and "count is 5" in shown.stdout
    failed = tycho("run", "toy.yaml", "--store", ws.store_url, "--json", "--set", "+generate.check=fail",
                   "--set", "generate.count=4", cwd=ws.root)
    assert failed.returncode == 1
    stage = json.loads(failed.stdout)["stages"]["generate"]
    assert stage["phase"] == "Failed" and "check TOY-COUNT failed: count is 4" in stage["message"]
    assert stage["outputs"] == {} and stage["record"] is None  # nothing published
