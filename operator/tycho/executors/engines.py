"""Container engines (podman, docker): find one, resolve an image, and the ``run`` command
of a stage's run phase.

Used by the container executor (``tycho.executors.container``: which engine, which image
digest) and by the host side of a containerised stage (``tycho.executors.contained``: the
command line, stop, clean-up). ``run_args`` is a pure function of a ``ContainerRun``, the
settings of one run phase, which travels as a JSON file from the executor to the stage's
wrapper process. Every container runs as uid 10001 on a read-only root with a private
``/tmp``, no capabilities, no new privileges, the stage's CPU and memory limits, no network
unless the stage declares it, and only these mounts: inputs read-only, ``out/``
writable, the invocation read-only (and, to reproduce a run, its recorded code
read-only). Its environment is the image's plus the node name and the stage's
Secret-backed variables by name: no store credentials, no signing key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic

from tycho.api import models, validation

EngineName = Literal["podman", "docker"]
ENGINES: tuple[EngineName, ...] = ("podman", "docker")
USER = 10001
"""The uid and gid stage code runs as (the images' user; stage pods run as it too)."""
WORK = "/stage"
BUILD_HINT = "make images (or: images/build.sh --base IMAGE stage-cpu, see images/README.md)"
TMPFS = "/tmp:rw,exec,nosuid,nodev,mode=1777"
"""Like a pod's emptyDir on /tmp: writable, programs may run from it."""
INSPECT_SECONDS = 60


class Engine(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    name: EngineName
    executable: str
    rootless: bool = False
    """podman run by a user other than root: uid 10001 is mapped to that user (keep-id)."""


class Image(pydantic.BaseModel):
    """A local image as the engine reports it."""

    model_config = pydantic.ConfigDict(frozen=True)

    id: str
    """sha256:HEX, the image ID (its config digest): what the run phase runs."""
    digest: str
    """sha256 hex that identifies it in keys and records: the manifest digest, which is the
    one ``NAME@sha256:...`` names (the registry's, for a pulled image)."""


class ContainerRun(pydantic.BaseModel):
    """How the run phase of one stage execution runs in a container."""

    model_config = pydantic.ConfigDict(extra="forbid")

    engine: Engine
    image: str
    """The image ID to run (resolved once per run, so a moved tag cannot swap it)."""
    name: str
    labels: dict[str, str] = {}
    cpus: float | None = None
    memory: int | None = None
    """Bytes."""
    gpus: int | None = None
    network: bool = False
    workdir: str
    code_dir: str | None = None
    """A host folder mounted read-only at ``workdir`` (reproduce: the recorded code)."""
    secret_env: list[str] = []
    """Names of the stage's Secret-backed variables, passed from the caller's environment."""
    node: str = ""
    """This machine's name (the record's node fact)."""


class EngineError(LookupError):
    """No usable engine or image; the message says what to install, build or pull."""


def find(preferred: str | None = None) -> Engine:
    """The engine named (``preferred`` or ``$TYCHO_CONTAINER_ENGINE``), else docker when its
    daemon answers, else podman, else docker."""
    name = preferred or os.environ.get("TYCHO_CONTAINER_ENGINE") or None
    if name is not None:
        if name not in ENGINES:
            raise EngineError(f"unknown container engine {name!r}: use podman or docker")
        exe = shutil.which(name)
        if exe is None:
            raise EngineError(f"{name} is not on PATH: install it (images/setup-host.sh installs podman) "
                              "or choose another engine with --engine")
        return _engine(name, exe)
    docker, podman = shutil.which("docker"), shutil.which("podman")
    if docker and _answers(docker):
        return _engine("docker", docker)
    if podman:
        return _engine("podman", podman)
    if docker:
        return _engine("docker", docker)
    raise EngineError("no container engine on PATH: install podman or docker (images/setup-host.sh installs "
                      "podman), or run without --executor container")


def _engine(name: EngineName, exe: str) -> Engine:
    if name == "docker" and _is_podman(exe):  # podman-docker: podman's options (no proxy copy, keep-id)
        name = "podman"
    return Engine(name=name, executable=exe, rootless=name == "podman" and os.geteuid() != 0)


def _is_podman(exe: str) -> bool:
    """Whether a ``docker`` on PATH is podman's docker-compatible command."""
    if Path(exe).resolve().name == "podman":
        return True
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.stdout.lower().startswith("podman")


def _answers(docker: str) -> bool:
    try:
        return subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _call(engine: Engine, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """One engine command; an engine that hangs or is gone is an EngineError that says so."""
    try:
        return subprocess.run([engine.executable, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EngineError(f"`{engine.name} {args[0]}` did not answer within {timeout:g}s: check that "
                          f"{engine.name} works (`{engine.name} info`)") from None
    except OSError as err:
        raise EngineError(f"could not run {engine.executable}: {err}") from None


def inspect(engine: Engine, reference: str) -> Image:
    """The local image a reference names; raises EngineError naming it and how to build it."""
    proc = _call(engine, ["image", "inspect", reference], INSPECT_SECONDS)
    found = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    if isinstance(found, dict):
        found = [found]
    if not found:
        why = (proc.stderr.strip().splitlines() or ["not found"])[-1]
        raise EngineError(f"image {reference} is not in {engine.name}'s local images ({why}): build it with "
                          f"{BUILD_HINT}, or {engine.name} pull it")
    return image_of(found[0], reference)


def image_of(doc: Mapping[str, Any], reference: str) -> Image:
    """An image from ``image inspect`` output (podman's or docker's). Its identity: the
    manifest digest (podman's ``Digest``; docker's repo digest of the reference's
    repository), else the image ID."""
    image_id = "sha256:" + str(doc["Id"]).removeprefix("sha256:")
    digest = str(doc.get("Digest") or "")
    if not digest:
        repo = _repository(reference)
        digest = next((d.split("@", 1)[1] for d in doc.get("RepoDigests") or []
                       if _repository(d) == repo and "@" in d), "")
    return Image(id=image_id, digest=(digest or image_id).removeprefix("sha256:"))


def _repository(reference: str) -> str:
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: -(len(last) - last.index(":"))]
    return name.removeprefix("docker.io/").removeprefix("library/").removeprefix("localhost/")


def limits(stage: models.Stage) -> tuple[float | None, int | None]:
    """The stage's CPU limit (cores) and memory limit (bytes), as a pod's would be."""
    cpu, memory = stage.resources.limit("cpu"), stage.resources.limit("memory")
    cores = validation.quantity_value(cpu) if cpu is not None else None
    size = validation.quantity_value(memory) if memory is not None else None
    return cores, int(size) if size is not None else None


def run_args(run: ContainerRun, work: str, invocation: str, grace: float = 10.0) -> list[str]:
    """The engine command of the run phase; ``work``: the host folder with in/ and out/,
    ``invocation``: the invocation file on the host, ``grace``: how long the wrapper inside
    gives the user's processes after SIGTERM (the caller's, so both sides agree)."""
    engine = run.engine
    args = [engine.executable, "run", "--name", run.name, "--pull", "never", "--read-only",
            "--user", f"{USER}:{USER}", "--tmpfs", TMPFS, "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--volume", f"{work}/in:{WORK}/in:ro", "--volume", f"{work}/out:{WORK}/out:rw",
            "--volume", f"{invocation}:{WORK}/invocation.json:ro", "--env", f"TYCHO_NODE_NAME={run.node}",
            "--env", f"TYCHO_GRACE_SECONDS={grace:g}"]
    if not run.network:
        args += ["--network", "none"]  # else the engine's default network
    if engine.name == "podman":
        args += ["--http-proxy=false"]  # podman would copy the caller's proxy variables in
        if engine.rootless:
            args += ["--userns", f"keep-id:uid={USER},gid={USER}"]
    if run.code_dir is not None:
        args += ["--volume", f"{run.code_dir}:{run.workdir}:ro"]
    if run.cpus is not None:
        args += ["--cpus", f"{run.cpus:g}"]
    if run.memory is not None:
        args += ["--memory", str(run.memory)]
    if run.gpus:
        args += (["--gpus", str(run.gpus)] if engine.name == "docker"
                 else [a for i in range(run.gpus) for a in ("--device", f"nvidia.com/gpu={i}")])
    for name in run.secret_env:
        args += ["--env", name]  # the value comes from the caller's environment, never this line
    for key, value in sorted(run.labels.items()):
        args += ["--label", f"{key}={value}"]
    return [*args, run.image, "--phase", "run", "--work", WORK, "--invocation", f"{WORK}/invocation.json"]


def stop(engine: Engine, name: str, seconds: float) -> None:
    """SIGTERM to the container, then SIGKILL after ``seconds`` (best effort: the caller
    removes the container by force when it is still there)."""
    try:
        _call(engine, ["stop", "--time", str(int(seconds + 0.999)), name], seconds + 60)
    except EngineError:
        pass


def oom_killed(engine: Engine, name: str) -> bool:
    try:
        proc = _call(engine, ["inspect", "--format", "{{.State.OOMKilled}}", name], INSPECT_SECONDS)
    except EngineError:
        return False
    return proc.stdout.strip() == "true"


def remove(engine: Engine, *names: str) -> None:
    """Remove containers, best effort (a clean-up must not hide why a stage ended; the
    runner's close removes what is left by label)."""
    if names:
        try:
            _call(engine, ["rm", "--force", *names], 120)
        except EngineError:
            pass


def labelled(engine: Engine, label: str) -> list[str]:
    """Names of the containers (running or not) carrying ``label`` (KEY=VALUE)."""
    try:
        proc = _call(engine, ["ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"],
                     INSPECT_SECONDS)
    except EngineError:
        return []
    return [n for n in proc.stdout.split() if n]
