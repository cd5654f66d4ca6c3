"""The run phase: the user's command under supervision, with no store credentials.

Retries with backoff, a wall-clock limit, cancellation (``stop``, set by the SIGTERM/
SIGINT handler of ``tycho stage-exec``: SIGTERM to the user's process group,
``TYCHO_GRACE_SECONDS``, then SIGKILL), secrets masked in what it prints, OOM kills named, and
its outcome and execution environment noted in ``out/run.json`` for publish. ``live`` is
the stage pod's live-metrics sidecar.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tycho import backoff, settings
from tycho.provenance import code as code_mod, store as store_mod
from tycho.stage import checks as checks_mod, contract, facts, follow as follow_mod, imports
from tycho.stage.invocation import Invocation
from tycho.stage.work import Log, StageCancelled, Work, code_root, missing

SBOM_ENV = "TYCHO_IMAGE_SBOM"
"""Set by a stage image: the path of its CycloneDX SBOM (images/stage/Dockerfile)."""


def mask(line: str, secrets: list[str]) -> str:
    """A line of stage output with the values of the stage's Secret-backed variables hidden:
    what the stage prints becomes pod logs, termination messages, status and events."""
    for value in secrets:
        if value in line:
            line = line.replace(value, "***")
    return line


def _stop(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM to the user's process group, a grace period, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


@dataclasses.dataclass(frozen=True)
class _Attempt:
    code: int
    tail: str
    """The last lines it printed (or why it ended)."""
    stopped: int | None = None
    """The step at which a sweep trial's stop rule stopped it."""


def _attempt(inv: Invocation, work: Work, hook: Path, store: store_mod.Store | None, log: Log,
             stop: threading.Event, grace: float) -> _Attempt:
    """One run of the user command."""
    shutil.rmtree(work.outputs, ignore_errors=True)
    work.outputs.mkdir()
    work.metrics.write_text("")
    for noted in (work.imports, work.frameworks, work.checks):
        noted.unlink(missing_ok=True)
    env = child_env(inv, work, hook)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    proc = subprocess.Popen([*inv.command, *inv.args], cwd=code_root(inv), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)

    secrets = sorted({os.environ[n] for n in inv.secret_env if len(os.environ.get(n, "")) >= 3}, key=len,
                     reverse=True)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = mask(raw.rstrip("\n"), secrets)
            log(line)
            tail.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    follow = follow_mod.MetricsFollower(inv, store, work.metrics, log)
    deadline = time.monotonic() + inv.timeout_seconds if inv.timeout_seconds else None
    while True:
        try:
            code = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        follow.poll()
        if follow.stopped is not None:
            _stop(proc, grace)
            reader.join(5)
            return _Attempt(0, f"stopped early at step {follow.stopped}", follow.stopped)
        if stop.is_set():
            _stop(proc, grace)
            reader.join(5)
            raise StageCancelled(f"stage {inv.stage!r} was cancelled")
        if deadline is not None and time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: no orphaned workers
            proc.wait()
            reader.join(5)
            return _Attempt(124, f"timed out after {inv.timeout_seconds:g}s")
    reader.join()
    follow.poll(final=True)
    return _Attempt(code, "\n".join(tail), follow.stopped)


OOM_COUNTERS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
"""Where a container (cgroup v2, v1) counts the processes the kernel killed at its memory limit."""


def oom_kills() -> int:
    """How many processes of this container the kernel killed at its memory limit so far."""
    for path in OOM_COUNTERS:
        try:
            with open(path, encoding="ascii") as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def child_env(inv: Invocation, work: Work, hook: Path) -> dict[str, str]:
    return contract.child_env(
        os.environ, inputs=work.inputs, outputs=work.outputs, params=work.params, metrics=work.metrics,
        stage=inv.stage, pipeline=str(inv.pipeline.get("name", "")), run_id=inv.run_id, env=inv.env,
        secret_env=inv.secret_env, imports_hook=hook, imports=work.imports, frameworks=work.frameworks,
        checks=work.checks)


def _note_image(inv: Invocation, work: Work) -> None:
    """What only the run phase can see, for publish to store: the code it ran (when the
    invocation names no stored archive: the code is in the image) and the image's SBOM."""
    for claimed in (work.code, work.sbom):  # only this phase writes these, never the stage's code
        claimed.unlink(missing_ok=True)
    if not inv.code.archive:
        work.code.write_bytes(code_mod.archive(code_root(inv)))
    sbom = os.environ.get(SBOM_ENV)
    if sbom and Path(sbom).is_file():
        shutil.copyfile(sbom, work.sbom)


def run(inv: Invocation, work: Work, log: Log = print, stop: threading.Event | None = None,
        store: store_mod.Store | None = None) -> bool:
    """Run the user's command (with retries) with no store credentials in its environment;
    notes the outcome and the execution environment in ``out/run.json``. ``store`` (local
    runs only) receives live metrics."""
    began = time.time()
    stop = stop or threading.Event()
    grace = settings.grace_seconds()  # SIGTERM to SIGKILL when the stage must stop
    work.out.mkdir(parents=True, exist_ok=True)
    reason, attempt, ok, stopped = "", 0, False, None
    with tempfile.TemporaryDirectory(prefix="tycho-hook-") as hook_dir:
        hook = imports.install_hook(Path(hook_dir))
        for attempt in range(1, inv.attempts + 1):
            if attempt > 1:
                delay = backoff.delay(attempt - 1, base=inv.backoff_seconds)
                log(f"[tycho] retry {attempt}/{inv.attempts} of {inv.stage} in {delay:g}s")
                if stop.wait(delay):
                    raise StageCancelled(f"stage {inv.stage!r} was cancelled")
            killed_before = oom_kills()
            attempted = _attempt(inv, work, hook, store, log, stop, grace)
            failed = [c for c in checks_mod.read(work.checks) if c.severity == "fail"]
            if failed:  # a finding about the data or the model: another attempt finds it again
                reason = "; ".join(f"check {c.code} failed: {c.message}" for c in failed)
                break
            absent = missing(inv, work.outputs)
            if attempted.stopped is not None or (attempted.code == 0 and not absent):
                ok, stopped = True, attempted.stopped
                break
            reason = (f"exit code {attempted.code}" if attempted.code else f"missing outputs: {', '.join(absent)}") + (
                f"; last output:\n{attempted.tail}" if attempted.tail else "")
            if attempted.code in (-signal.SIGKILL, 128 + signal.SIGKILL) and oom_kills() > killed_before:
                reason = f"out of memory: the kernel killed it at its memory limit ({reason})"
        env = child_env(inv, work, hook)
    if ok:
        _note_image(inv, work)
    found = facts.collect(env, imports.frameworks(work.frameworks))
    work.ran.write_text(json.dumps({"ok": ok, "attempts": attempt, "reason": reason, "facts": found,
                                    "stopped": stopped, "began": began}))
    return ok


def live(inv: Invocation, store: store_mod.Store, work: Work, stop: threading.Event) -> None:
    """The live-metrics sidecar of a stage pod (store credentials, no stage code): while the
    stage runs, publish its growing metrics file every ``LIVE_SECONDS``, so a running
    stage's curves reach the board; then idle until the pod ends (a sidecar that exits is
    restarted). The record keeps the whole series once publish has run."""
    follow = follow_mod.MetricsFollower(inv, store, work.metrics, lambda line: None)
    while not stop.is_set() and not work.ran.exists():
        follow.poll()
        stop.wait(1.0)
    stop.wait()
