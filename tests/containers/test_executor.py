"""The container executor for real: `tycho run --executor container` runs each stage's run
phase in its image with podman, fetch and publish on this machine.

Small inline stages (``python -c``) in the stage-cpu image: what a stage sees of its
container (uid, root, network, limits, environment, files), what the record says of the
image (the engine's digest, its SBOM), how a stage that runs out of memory fails and how
a cancelled one stops, and the errors for a missing image or engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tycho.provenance import record

from ..images import _images

pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]
TYCHO = str(Path(sys.executable).with_name("tycho"))
IMAGE = f"tycho/stage-cpu:{_images.VERSION}"

PROBE = """
import json, os, pathlib, socket
def read(path):
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError as err:
        return type(err).__name__
probe = {
    "uid": os.getuid(), "gid": os.getgid(),
    "env": dict(os.environ),
    "signing_key": read(os.environ["PROBE_KEY"]),
    "store": os.path.exists(os.environ["PROBE_STORE"]),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "cpu_quota": [read(p) for p in ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max")],
    "memory_limit": [read(p) for p in ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")],
    "inputs_writable": os.access(os.environ["TYCHO_INPUTS"], os.W_OK),
    "data": read(pathlib.Path(os.environ["TYCHO_INPUTS"]) / "data"),
}
try:
    open("/probe", "w")
    probe["root"] = "writable"
except OSError:
    probe["root"] = "read-only"
out = pathlib.Path(os.environ["TYCHO_OUTPUTS"]) / "probe.json"
out.write_text(json.dumps(probe, indent=1, sort_keys=True))
"""


def manifest(tmp: Path, stages: list[dict[str, Any]], name: str = "probe") -> Path:
    doc = {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline", "metadata": {"name": name},
           "spec": {"stages": stages}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def tycho(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
          ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([TYCHO, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TYCHO_GRACE_SECONDS": "3", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"tycho {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def leftover_containers() -> list[str]:
    proc = subprocess.run(["podman", "ps", "--all", "--filter", "label=dev.tycho.runner", "--format", "{{.Names}}"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.split()


@pytest.fixture(scope="module")
def probe_run(stage_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the probe stage: its input is a file from this machine, and the runner's
    environment holds store credentials and a declared Secret-backed variable."""
    tmp = tmp_path_factory.mktemp("probe")
    (tmp / "data.txt").write_text("42\n")
    store = tmp / "store"
    key = tmp / ".tycho" / "signing.key"
    stage = {"name": "probe", "image": IMAGE, "command": ["python", "-c", PROBE],
             "inputs": [{"name": "data", "url": f"file://{tmp / 'data.txt'}"}], "outputs": ["probe.json"],
             "resources": {"cpu": "500m", "memory": "768Mi"},
             "env": [{"name": "PROBE_KEY", "value": str(key)}, {"name": "PROBE_STORE", "value": str(store)},
                     {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}]}
    path = manifest(tmp, [stage])
    env = {"AWS_SECRET_ACCESS_KEY": "runner-secret-value", "AWS_ACCESS_KEY_ID": "runner-key-id",
           "API_TOKEN": "declared-token-value", "TYCHO_SIGNING_KEY": str(key), "https_proxy": "http://u:p@proxy:3128"}
    proc = tycho("run", str(path), "--executor", "container", "--engine", "podman", "--json",
                 "--store", f"file://{store}", cwd=tmp, env=env)
    result: dict[str, Any] = json.loads(proc.stdout)
    stage_result = result["stages"]["probe"]
    doc = json.loads((store / stage_result["record"]).read_text())
    probe = json.loads((store / "objects" / "sha256" / stage_result["outputs"]["probe.json"]).read_text())
    return {"result": result, "record": doc, "probe": probe, "store": store, "tmp": tmp, "key": key}


def test_the_stage_runs_as_uid_10001_on_a_read_only_root_without_network(probe_run: dict[str, Any]) -> None:
    probe = probe_run["probe"]
    assert (probe["uid"], probe["gid"], probe["root"]) == (10001, 10001, "read-only")
    assert probe["interfaces"] == ["lo"]
    assert probe["data"] == "42" and probe["inputs_writable"] is False


def test_the_container_has_the_stages_cpu_and_memory_limits(probe_run: dict[str, Any]) -> None:
    quota, memory = probe_run["probe"]["cpu_quota"], probe_run["probe"]["memory_limit"]
    assert "50000" in quota[0] or quota[1].startswith("50000 "), quota  # 500m: half of a 100 ms period
    assert str(768 * 2**20) in memory, memory


def test_no_store_credential_signing_key_or_store_reaches_the_container(probe_run: dict[str, Any]) -> None:
    probe = probe_run["probe"]
    env = probe["env"]
    assert not [k for k in env if k.startswith("AWS_") or k == "TYCHO_SIGNING_KEY" or "proxy" in k.lower()]
    assert "runner-secret-value" not in json.dumps(env)
    assert env["API_TOKEN"] == "declared-token-value"  # what the stage declares, it gets
    assert probe_run["key"].is_file() and probe["signing_key"] == "FileNotFoundError"
    assert probe["store"] is False


def test_the_record_names_the_engines_image_digest_and_the_images_sbom(probe_run: dict[str, Any],
                                                                       stage_image: str) -> None:
    doc = probe_run["record"]
    deps = {d["name"]: d for d in record.dependencies(doc)}
    assert deps["image"]["digest"] == {"sha256": stage_image.removeprefix("sha256:")}
    assert deps["image"]["annotations"] == {"resolvedBy": "podman"}
    assert doc["predicate"]["runDetails"]["builder"]["id"].startswith("https://tycho.dev/builders/container@")
    assert doc["predicate"]["buildDefinition"]["internalParameters"]["keyComponents"]["image"] == {
        "digest": stage_image.removeprefix("sha256:")}
    sbom = subprocess.run(["podman", "run", "--rm", "--entrypoint", "cat", _images.ref("stage-cpu"),
                           "/app/sbom.cdx.json"], capture_output=True, check=True).stdout
    assert record.image_sbom(doc) == hashlib.sha256(sbom).hexdigest()
    stored = json.loads((probe_run["store"] / "objects" / "sha256" / record.image_sbom(doc)).read_text())
    assert stored["bomFormat"] == "CycloneDX" and any(c["name"] == "tycho" for c in stored["components"])
    # The code is the image's: archived by the run phase, stored and named.
    code = deps["code"]
    assert code["annotations"]["source"] == "image-reference" and code["uri"].startswith("tycho:objects/sha256/")
    assert (probe_run["store"] / "objects" / "sha256" / code["digest"]["sha256"]).is_file()


def test_verify_passes_and_a_second_run_is_a_hit_without_a_container(probe_run: dict[str, Any]) -> None:
    tmp, store = probe_run["tmp"], probe_run["store"]
    tycho("verify", probe_run["result"]["runId"], "--store", f"file://{store}", cwd=tmp)
    again = json.loads(tycho("run", str(tmp / "probe.yaml"), "--executor", "container", "--json",
                             "--store", f"file://{store}", cwd=tmp, env={"TYCHO_CONTAINER_ENGINE": "podman"}).stdout)
    assert again["stages"]["probe"]["cacheHit"] is True
    assert again["stages"]["probe"]["cacheKey"] == probe_run["result"]["stages"]["probe"]["cacheKey"]
    assert leftover_containers() == []


def test_explain_with_the_container_executor_sees_the_hit(probe_run: dict[str, Any]) -> None:
    tmp, store = probe_run["tmp"], probe_run["store"]
    rows = json.loads(tycho("explain", str(tmp / "probe.yaml"), "--executor", "container", "--engine", "podman",
                            "--json", "--store", f"file://{store}", cwd=tmp).stdout)["stages"]
    assert [(r["stage"], r["action"]) for r in rows] == [("probe", "hit")]
    subprocess_rows = json.loads(tycho("explain", str(tmp / "probe.yaml"), "--json", "--store", f"file://{store}",
                                       cwd=tmp).stdout)["stages"]
    assert subprocess_rows[0]["action"] == "run"  # the local Python is another environment than the image


def test_a_stage_over_its_memory_limit_fails_naming_the_limit(stage_image: str, tmp_path: Path) -> None:
    hog = "x = bytearray(600 * 2**20); import time; time.sleep(1)"
    path = manifest(tmp_path, [{"name": "hog", "image": IMAGE, "command": ["python", "-c", hog],
                                "outputs": ["never"], "resources": {"cpu": "1", "memory": "256Mi"}}], "hog")
    proc = tycho("run", str(path), "--executor", "container", "--engine", "podman", "--json",
                 "--store", f"file://{tmp_path / 'store'}", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    message = json.loads(proc.stdout)["stages"]["hog"]["message"]
    assert "ran out of memory in its container (limit 256 MiB" in message, message
    assert not list((tmp_path / "store").glob("records/*/*.json"))


def test_an_output_linked_to_what_publish_could_read_fails_and_stores_nothing(stage_image: str,
                                                                              tmp_path: Path) -> None:
    """Publish runs on this machine with the store credentials: a stage that links its output
    to /proc/self/environ (publish's own environment) must not get it stored."""
    link = "import os; os.symlink('/proc/self/environ', os.path.join(os.environ['TYCHO_OUTPUTS'], 'env'))"
    path = manifest(tmp_path, [{"name": "sneak", "image": IMAGE, "command": ["python", "-c", link],
                                "outputs": ["env"]}], "sneak")
    store = tmp_path / "store"
    proc = tycho("run", str(path), "--executor", "container", "--engine", "podman", "--json",
                 "--store", f"file://{store}", cwd=tmp_path, check=False,
                 env={"AWS_SECRET_ACCESS_KEY": "sneaky-secret-value"})
    assert proc.returncode == 1
    message = json.loads(proc.stdout)["stages"]["sneak"]["message"]
    assert "out/outputs/env is a symlink" in message, message
    assert not list(store.glob("records/*/*.json"))
    stored = [p.read_bytes() for p in store.rglob("*") if p.is_file()]
    assert not any(b"sneaky-secret-value" in data for data in stored)


def test_cancelling_stops_the_container_with_sigterm_and_publishes_nothing(stage_image: str, tmp_path: Path) -> None:
    sleeper = ("import signal, sys, time\n"
               "signal.signal(signal.SIGTERM, lambda *a: (print('stage got SIGTERM', flush=True), sys.exit(3)))\n"
               "print('sleeping', flush=True)\n"
               "time.sleep(600)\n")
    path = manifest(tmp_path, [{"name": "sleeper", "image": IMAGE, "command": ["python", "-c", sleeper],
                                "outputs": ["never"]}], "sleeper")
    run = subprocess.Popen([TYCHO, "run", str(path), "--executor", "container", "--engine", "podman",
                            "--store", f"file://{tmp_path / 'store'}", "-v"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env={**os.environ, "TYCHO_GRACE_SECONDS": "3"})
    try:
        deadline = time.monotonic() + 120
        while not leftover_containers() or "sleeping" not in _logs(tmp_path):
            assert time.monotonic() < deadline and run.poll() is None, "the stage's container did not start"
            time.sleep(0.3)
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM, out
    assert "stage got SIGTERM" in _logs(tmp_path)
    assert leftover_containers() == []
    assert not list((tmp_path / "store").glob("records/*/*.json"))
    (summary,) = (tmp_path / "store" / "runs").glob("*.json")
    assert json.loads(summary.read_text())["phase"] == "Cancelled"


def _logs(tmp: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp / ".tycho" / "logs").glob("*/*.log"))


def test_a_missing_image_is_named_with_the_command_that_builds_it(stage_image: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, [{"name": "x", "image": "tycho/no-such-image:0.0.0", "command": ["true"],
                                "outputs": ["o"]}], "missing")
    proc = tycho("run", str(path), "--executor", "container", "--engine", "podman", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "image tycho/no-such-image:0.0.0 is not in podman's local images" in proc.stderr
    assert "make images" in proc.stderr and "images/build.sh" in proc.stderr


def test_a_missing_engine_is_named(tmp_path: Path) -> None:
    path = manifest(tmp_path, [{"name": "x", "image": IMAGE, "command": ["true"], "outputs": ["o"]}], "noengine")
    proc = tycho("run", str(path), "--executor", "container", "--engine", "docker", cwd=tmp_path, check=False,
                 env={"PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 2 and "docker is not on PATH" in proc.stderr, proc.stderr
