"""The project's container images, built for real with podman for the tests that run them.

``ensure_built`` makes the Python base from Debian packages (images/base.sh) and builds
the operator and stage images with images/build.sh --if-changed: a rebuild happens only
when an input (Dockerfile, lock files, tycho's source, the pipeline code, the base)
hashes differently from the label of the image already there, so a second test session
on the same machine finds them in well under a second. Used by tests/images (run the
images) and tests/node (run them as pods on the test cluster's real node).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tycho.stage import invocation

REPO = Path(__file__).resolve().parents[2]
VERSION: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
BASE = "localhost/tycho/python-base:3.11-bookworm"
CACHE = Path(os.environ.get("TYCHO_CACHE", Path.home() / ".cache" / "tycho"))
LOG_DIR = CACHE / "images"
# The user every image runs as, and the operator's pods and stage pods run as.
UID = 10001


def ref(target: str) -> str:
    """Local reference of an image built by images/build.sh (podman prefixes localhost/)."""
    return f"localhost/tycho/{target}:{VERSION}"


def podman() -> str | None:
    return shutil.which("podman")


def unavailable() -> str | None:
    """Why images cannot be built here (None when they can)."""
    if podman() is None:
        return "podman is not installed (make test installs it: images/setup-host.sh)"
    if os.geteuid() != 0 and _label(BASE, "dev.tycho.base.inputs") is None:
        return f"no {BASE} and not root (images/base.sh needs root for debootstrap)"
    return None


def _label(image: str, name: str) -> str | None:
    proc = subprocess.run(["podman", "image", "inspect", "--format", f'{{{{index .Labels "{name}"}}}}', image],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


@contextmanager
def _lock() -> Iterator[None]:
    """One build at a time on this machine (two worktrees' test sessions)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _step(name: str, cmd: Sequence[str], timeout: float) -> str:
    log = LOG_DIR / f"{name}.log"
    env = dict(os.environ, DOCKER="podman")
    with open(log, "w") as out:
        proc = subprocess.run(list(cmd), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    text = log.read_text()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-40:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); full log {log}:\n{tail}")
    return text


def ensure_built(targets: Sequence[str] = ("operator", "stage-cpu")) -> dict[str, str]:
    """Build (or find up to date) the base and ``targets``; target -> image ID (sha256:...)."""
    with _lock():
        _step("base", ["bash", "images/base.sh", "--tag", BASE], timeout=900)
        _step("build-" + "+".join(targets), ["bash", "images/build.sh", "--base", BASE, "--if-changed", *targets],
              timeout=1800)
    ids = {}
    for target in targets:
        proc = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", ref(target)],
                              capture_output=True, text=True, check=True)
        ids[target] = "sha256:" + proc.stdout.strip().removeprefix("sha256:")
    return ids


def stage_invocation(store_url: str, data_uri: str, data_sha256: str) -> invocation.Invocation:
    """The one stage invocation the image and real-node tests run (kept in one place: it
    follows the wrapper's contract, tycho.stage.invocation).

    The stage reads its input ``data`` ("42\\n") and params, writes one output and a metric,
    and reports what it saw of its container: its uid and whether it could write to /. Its
    output is ``STAGE_OUTPUT`` when it ran as uid 10001 on a read-only root.
    """
    script = (
        "import json, os, pathlib\n"
        "params = json.loads(pathlib.Path(os.environ['TYCHO_PARAMS']).read_text())\n"
        "data = (pathlib.Path(os.environ['TYCHO_INPUTS']) / 'data').read_text()\n"
        "try:\n"
        "    open('/probe', 'w'); root = 'writable'\n"
        "except OSError:\n"
        "    root = 'read-only'\n"
        "out = pathlib.Path(os.environ['TYCHO_OUTPUTS']) / 'report.txt'\n"
        "out.write_text(f\"{data.strip()}x{params['factor']} uid={os.getuid()} root={root}\\n\")\n"
        "with open(os.environ['TYCHO_METRICS'], 'a') as m:\n"
        "    m.write(json.dumps({'accuracy': 0.5}) + '\\n')\n"
        "print('stage done')\n")
    # A plain document, validated by the wrapper's own model: only the fields this stage needs.
    return invocation.Invocation.model_validate({
        "pipeline": {"name": "image-test", "namespace": "local", "uid": "0", "generation": 1},
        "run_id": "image-test-1", "stage": "report", "invocation_id": "image-test-1/report",
        "store": store_url, "image": {"reference": ref("stage-cpu")},
        "command": ["python", "-c", script], "params": {"factor": 3},
        "inputs": [{"name": "data", "url": data_uri, "sha256": data_sha256}],
        "outputs": [{"name": "report.txt"}], "code": {"digest": "0" * 64}, "workdir": "/app/pipeline",
        "cache_key": "1" * 64,
    })


# The output of stage_invocation's stage given "42\n", run as uid 10001 on a read-only root.
STAGE_OUTPUT = b"42x3 uid=10001 root=read-only\n"


def run(image: str, *args: str, options: Sequence[str] = (), timeout: float = 300,
        check: bool = False) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` with the options every Tycho pod has: read-only root, uid 10001,
    no network (``options`` add mounts, --tmpfs, --entrypoint, ...)."""
    cmd = ["podman", "run", "--rm", "--read-only", "--user", f"{UID}:{UID}", "--network", "none",
           *options, image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)
