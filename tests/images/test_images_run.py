"""The images run for real: podman, a read-only root file system, uid 10001, no network.

The first session on a machine builds them (about 5 minutes: base 75 s, stage-cpu 4 min,
operator 1 min); later sessions rebuild only when an input changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import tycho
from tycho.provenance import code

from . import _images

pytestmark = [pytest.mark.images, pytest.mark.timeout(2400)]
OPERATOR, STAGE = _images.ref("operator"), _images.ref("stage-cpu")


def test_operator_image_prints_the_version_of_this_checkout(images: dict[str, str]) -> None:
    proc = _images.run(OPERATOR, "--version", check=True)
    assert proc.stdout.strip() == f"tycho {tycho.__version__}"


@pytest.mark.parametrize("image", [OPERATOR, STAGE], ids=["operator", "stage-cpu"])
def test_image_runs_as_uid_10001_by_default_and_cannot_write_its_root(images: dict[str, str], image: str) -> None:
    script = "id -u; id -g; touch /opt/venv/x 2>/dev/null && echo wrote || echo read-only"
    proc = subprocess.run(["podman", "run", "--rm", "--read-only", "--network", "none", "--entrypoint", "sh",
                           image, "-c", script], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["10001", "10001", "read-only"]
    # Even with a writable root, the code and the environment belong to root.
    proc = subprocess.run(["podman", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                           "touch /opt/venv/bin/x /app/x 2>/dev/null && echo wrote || echo denied"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "denied"


@pytest.mark.parametrize("image", [OPERATOR, STAGE], ids=["operator", "stage-cpu"])
def test_image_ships_no_build_tools(images: dict[str, str], image: str) -> None:
    proc = _images.run(image, "-c", "ls /opt/build /opt/app /src 2>&1; ls /opt/venv/bin",
                       options=["--entrypoint", "sh"], check=True)
    assert proc.stdout.count("No such file or directory") == 3
    assert "tycho" in proc.stdout.split() and "pip" not in proc.stdout.split()


def test_stage_image_carries_the_pipeline_code_it_is_labelled_with(images: dict[str, str]) -> None:
    expected = code.digest(_images.REPO / "pipelines" / "digits")
    label = subprocess.run(["podman", "image", "inspect", "--format", '{{index .Labels "dev.tycho.code.digest"}}',
                            STAGE], capture_output=True, text=True, check=True).stdout.strip()
    baked = _images.run(STAGE, "/app/code.sha256", options=["--entrypoint", "cat"], check=True).stdout.strip()
    assert label == baked == expected


def test_stage_image_runs_a_stage_into_a_mounted_file_store(images: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    os.chown(store, _images.UID, _images.UID)
    data = tmp_path / "data.txt"
    data.write_text("42\n")
    inv = _images.stage_invocation("file:///store", "file:///in/data.txt", hashlib.sha256(b"42\n").hexdigest())
    (tmp_path / "invocation.json").write_text(inv.model_dump_json())

    proc = _images.run(STAGE, "--invocation", "/in/invocation.json", options=[
        "--tmpfs", "/tmp", "-v", f"{tmp_path}/invocation.json:/in/invocation.json:ro",
        "-v", f"{data}:/in/data.txt:ro", "-v", f"{store}:/store:rw", "--cpus", "1", "--memory", "1g"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stage done" in proc.stdout

    expected = _images.STAGE_OUTPUT
    digest = hashlib.sha256(expected).hexdigest()
    stored = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in store.rglob("*") if p.is_file()}
    assert digest in stored, f"the output is not in the store: {sorted(str(p) for p in stored.values())}"
    records = [json.loads(p.read_text()) for p in stored.values() if p.suffix == ".json" and
               json.loads(p.read_text()).get("_type", "").startswith("https://in-toto.io/Statement")]
    assert len(records) == 1
    assert [(s["name"], s["digest"]) for s in records[0]["subject"]] == [("report.txt", {"sha256": digest})]


def test_a_second_build_with_unchanged_inputs_rebuilds_nothing(images: dict[str, str]) -> None:
    again = _images.ensure_built(("operator", "stage-cpu"))
    assert again == images
    log = (_images.LOG_DIR / "build-operator+stage-cpu.log").read_text()
    assert log.count("up to date (inputs ") == 2, log[-2000:]
    assert "(images/stage/Dockerfile)" not in log and "(images/operator/Dockerfile)" not in log
