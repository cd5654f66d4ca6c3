"""The container engines' side of the container executor: which digest identifies a local
image (podman's and docker's inspect output), and the run command of a stage's run phase
(locked down as a stage pod is)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.kube import kubefakes as fk
from tycho.api import models, validation
from tycho.executors import engines

PODMAN = engines.Engine(name="podman", executable="/usr/bin/podman")
DOCKER = engines.Engine(name="docker", executable="/usr/bin/docker")


def _stage(**fields: Any) -> models.Stage:
    doc: dict[str, Any] = fk.toy_doc()
    doc["spec"]["stages"][0].update(fields)
    return validation.check(doc).spec.stages[0]


def test_podman_images_are_identified_by_their_manifest_digest() -> None:
    doc = {"Id": "a" * 64, "Digest": "sha256:" + "b" * 64, "RepoDigests": [f"localhost/x@sha256:{'b' * 64}"]}
    assert engines.image_of(doc, "x:1") == engines.Image(id="sha256:" + "a" * 64, digest="b" * 64)


def test_docker_images_by_the_repo_digest_of_their_repository_else_by_id() -> None:
    doc = {"Id": "sha256:" + "a" * 64, "RepoDigests": [f"other/y@sha256:{'c' * 64}", f"acme/x@sha256:{'b' * 64}"]}
    assert engines.image_of(doc, "acme/x:1.0").digest == "b" * 64
    assert engines.image_of(doc, "docker.io/acme/x:1.0").digest == "b" * 64
    assert engines.image_of({"Id": "sha256:" + "a" * 64, "RepoDigests": []}, "acme/x:1.0").digest == "a" * 64


def test_limits_are_the_stages_limits_in_cores_and_bytes() -> None:
    assert engines.limits(_stage(resources={"cpu": "500m", "memory": "2Gi"})) == (0.5, 2 * 2**30)
    assert engines.limits(_stage(resources={"requests": {"cpu": "1"},
                                            "limits": {"cpu": "3", "memory": "1Gi"}})) == (3.0, 2**30)
    assert engines.limits(_stage(resources={})) == (None, None)


def _run(**fields: Any) -> engines.ContainerRun:
    base: dict[str, Any] = {"engine": PODMAN, "image": "sha256:" + "a" * 64, "name": "tycho-x", "workdir": "/app/p"}
    return engines.ContainerRun.model_validate({**base, **fields})


def _pairs(args: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(args, args[1:]) if a.startswith("--")]


def test_the_run_phase_runs_locked_down_without_network_with_the_stages_limits() -> None:
    args = engines.run_args(_run(cpus=1.5, memory=2**30, secret_env=["API_TOKEN"]), "/w", "/w/invocation.json")
    pairs = _pairs(args)
    assert args[:2] == ["/usr/bin/podman", "run"] and "--read-only" in args
    for pair in [("--user", "10001:10001"), ("--network", "none"), ("--cpus", "1.5"), ("--memory", str(2**30)),
                 ("--cap-drop", "ALL"), ("--security-opt", "no-new-privileges"), ("--pull", "never"),
                 ("--volume", "/w/in:/stage/in:ro"), ("--volume", "/w/out:/stage/out:rw"),
                 ("--volume", "/w/invocation.json:/stage/invocation.json:ro"), ("--env", "API_TOKEN")]:
        assert pair in pairs, pair
    assert "--http-proxy=false" in args  # podman would copy the caller's proxy settings in
    assert ("--env", "TYCHO_GRACE_SECONDS=10") in pairs  # the wrapper inside keeps the caller's grace period
    assert ("--env", "TYCHO_GRACE_SECONDS=2.5") in _pairs(engines.run_args(_run(), "/w", "/w/i", grace=2.5))
    assert [v for k, v in pairs if k == "--volume"] == ["/w/in:/stage/in:ro", "/w/out:/stage/out:rw",
                                                         "/w/invocation.json:/stage/invocation.json:ro"]
    assert args[-7:] == ["sha256:" + "a" * 64, "--phase", "run", "--work", "/stage", "--invocation",
                         "/stage/invocation.json"]


def test_a_stage_that_declares_network_gets_the_engines_default_network() -> None:
    assert "--network" not in engines.run_args(_run(network=True), "/w", "/w/i.json")


def test_reproducing_mounts_the_recorded_code_read_only_over_the_workdir() -> None:
    assert ("--volume", "/tmp/code:/app/p:ro") in _pairs(engines.run_args(_run(code_dir="/tmp/code"), "/w", "/w/i"))


def test_rootless_podman_maps_the_caller_to_the_stage_user() -> None:
    rootless = PODMAN.model_copy(update={"rootless": True})
    assert ("--userns", "keep-id:uid=10001,gid=10001") in _pairs(engines.run_args(_run(engine=rootless), "/w", "/w/i"))


def test_gpus_as_each_engine_names_them() -> None:
    assert ("--gpus", "2") in _pairs(engines.run_args(_run(engine=DOCKER, gpus=2), "/w", "/w/i"))
    podman = _pairs(engines.run_args(_run(gpus=2), "/w", "/w/i"))
    assert [v for k, v in podman if k == "--device"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]


def test_an_engine_not_on_path_is_named_with_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(engines.EngineError, match="docker is not on PATH"):
        engines.find("docker")
    with pytest.raises(engines.EngineError, match="no container engine on PATH: install podman or docker"):
        engines.find(None)


def test_podmans_docker_command_gets_podmans_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """podman-docker's `docker` is a script that runs podman: it must not be driven as docker
    (podman would copy the caller's proxy variables into the container without --http-proxy=false)."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (make test installs it: images/setup-host.sh)")
    shim = tmp_path / "docker"
    shim.write_text(f'#!/bin/sh\nexec {podman} "$@"\n')  # what Debian's podman-docker installs
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = engines.find("docker")
    assert engine.name == "podman" and engine.executable == str(shim)
    assert "--http-proxy=false" in engines.run_args(_run(engine=engine), "/w", "/w/i")


def test_an_engine_that_hangs_is_named_not_a_traceback(tmp_path: Path) -> None:
    slow = tmp_path / "podman"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    engine = engines.Engine(name="podman", executable=str(slow))
    with pytest.raises(engines.EngineError, match=r"`podman image` did not answer within 0.5s"):
        engines._call(engine, ["image", "inspect", "x"], 0.5)
    gone = engines.Engine(name="podman", executable=str(tmp_path / "missing"))
    engines.remove(gone, "x")  # clean-ups are best effort
    assert engines.oom_killed(gone, "x") is False and engines.labelled(gone, "a=b") == []
