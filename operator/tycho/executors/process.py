"""The subprocess executor (the default): each stage execution is ``python -m tycho
stage-exec`` in its own process group on this machine.

Its image identity is this machine's Python (version, implementation, platform); the
distributions a stage imported are recorded by the wrapper and checked before a cache
hit is used (``admit``), so installing a linter retrains nothing while a new numpy
does. Without an image digest its keys never equal a container's or a cluster's:
run with the container executor to share a cache with a cluster.

Cancelling sends SIGTERM to the wrapper's process group; the wrapper stops the user's
process group (SIGTERM, grace, SIGKILL) and publishes nothing. A wrapper that does not
exit within its grace period plus ``KILL_MARGIN`` is killed. A wrapper whose runner died
(even by SIGKILL) gets SIGTERM from the kernel and stops the same way.

The stage wrapper's module (its grace period, its metrics lines) is imported once a
stage starts: a run whose stages are all cache hits never needs it.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from tycho import settings
from tycho.api import models
from tycho.engine import model, prepare
from tycho.planning import cachekey
from tycho.provenance import documents, signing, store as store_mod
from tycho.stage import imports, invocation

KILL_MARGIN = 5.0
PR_SET_PDEATHSIG = 1
TAIL_LINES = 20


class Listener(Protocol):
    """Where an executor sends what a running stage prints (the progress display)."""

    def line(self, stage: str, text: str) -> None: ...
    def metrics(self, stage: str, values: dict[str, float]) -> None: ...


def python_environment() -> dict[str, str]:
    """The image identity of a subprocess stage."""
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": f"{platform.system().lower()}-{platform.machine()}"}


class _Process:
    def __init__(self, start: model.Start, popen: subprocess.Popen[str], result: Path, log: Path) -> None:
        self.start, self.popen, self.result_path, self.log_path = start, popen, result, log
        self.started_at = documents.now()
        self.finished_at: str | None = None
        self.cancelled = False
        self.tail: list[str] = []
        self.execution: model.Execution | None = None  # set once finished


class ProcessExecutor:
    kind = "subprocess"

    def __init__(self, work: Path, logs: Path, listener: Listener, extra_env: Mapping[str, str] | None = None,
                 signing_key: Path | None = None) -> None:
        """``work``: invocation and result files; ``logs``: ``<logs>/<run id>/<stage>.log``;
        ``signing_key``: the Ed25519 key that signs records (default: ``$TYCHO_SIGNING_KEY``,
        else ``signing.key`` beside ``work``, created on first use)."""
        self.work_dir, self.logs_dir, self.listener = work, logs, listener
        self.grace = settings.grace_seconds()  # read once: a bad value is refused before any stage starts
        self.signing_key = signing_key or Path(os.environ.get(signing.KEY_ENV) or work.parent / "signing.key")
        self.extra_env = {**dict(extra_env or {}), signing.KEY_ENV: str(self.signing_key.resolve())}
        self._procs: dict[str, _Process] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()

    # ---- identity --------------------------------------------------------------------------
    def image(self, stage: models.Stage) -> tuple[documents.ImageRef, Mapping[str, Any]]:
        env = python_environment()
        return (documents.ImageRef(reference=stage.image, resolved_by="local-environment"),
                cachekey.image_part(reference=stage.image, environment=env))

    def code(self, pipeline: models.ExperimentPipeline, store: store_mod.Store, manifest_dir: Path,
             restored: tuple[documents.CodeRef, Path] | None = None) -> tuple[documents.CodeRef, str]:
        """The run's code and where stages find it: the code folder on this machine, its
        archive stored (``restored``: a recorded archive extracted here, to reproduce)."""
        if restored is not None:
            return restored[0], str(restored[1])
        root = prepare.code_root(pipeline, manifest_dir)
        return prepare.store_code(store, root), str(root)

    def admit(self, entry: documents.CacheEntry) -> str | None:
        if not entry.environment:
            return None
        changed = imports.mismatch(entry.environment)
        return ("the stage's Python distributions changed: " + ", ".join(changed)) if changed else None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, start: model.Start) -> None:
        signing.ensure_key(self.signing_key)
        logs = self.logs_dir / start.invocation.run_id
        self.work_dir.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        inv_path = self.work_dir / f"{start.execution}.invocation.json"
        result = self.work_dir / f"{start.execution}.result.json"
        result.unlink(missing_ok=True)
        inv_path.write_text(start.invocation.model_dump_json())
        log = logs / f"{start.stage.name}.log"
        popen = subprocess.Popen(
            self.command(start, inv_path, result), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True,
            env={**os.environ, **self.extra_env}, preexec_fn=stop_with_parent)
        proc = _Process(start, popen, result, log)
        with self._lock:
            self._procs[start.execution] = proc
        threading.Thread(target=self._follow, args=(proc,), daemon=True, name=f"stage-{start.stage.name}").start()

    def command(self, start: model.Start, invocation: Path, result: Path) -> list[str]:
        """The wrapper process of one execution."""
        return [sys.executable, "-m", "tycho", "stage-exec", "--invocation", str(invocation), "--result", str(result)]

    def _follow(self, proc: _Process) -> None:
        from tycho.stage import follow

        stage = proc.start.stage.name
        assert proc.popen.stdout is not None
        with open(proc.log_path, "w", encoding="utf-8") as log:
            for raw in proc.popen.stdout:
                line = raw.rstrip("\n")
                if line.startswith(follow.METRICS_PREFIX):
                    try:
                        self.listener.metrics(stage, json.loads(line[len(follow.METRICS_PREFIX):]))
                    except ValueError:
                        pass
                    continue
                log.write(line + "\n")
                log.flush()
                proc.tail = (proc.tail + [line])[-TAIL_LINES:]
                self.listener.line(stage, line)
        code = proc.popen.wait()
        proc.finished_at = documents.now()
        proc.execution = self._finished(proc, code)
        self._changed.set()

    def _finished(self, proc: _Process, code: int) -> model.Execution:
        inv = proc.start.invocation
        base = model.Execution(id=proc.start.execution, stage=inv.stage, cache_key=inv.cache_key, run_id=inv.run_id,
                               trial=inv.trial, phase="Failed", started_at=proc.started_at,
                               finished_at=proc.finished_at, image=inv.image)
        outcome: dict[str, Any] = {}
        if proc.result_path.is_file():
            try:
                outcome = json.loads(proc.result_path.read_text())
            except ValueError:
                outcome = {}
        if code == 0 and "result" in outcome:
            result = invocation.Result.model_validate(outcome["result"])
            entry = documents.CacheEntry(key=inv.cache_key, record=result.record, outputs=result.outputs,
                                         directories=result.directories, metrics=result.metrics,
                                         environment=result.environment, curve=result.curve, checks=result.checks,
                                         stopped=result.stopped)
            return base.model_copy(update={"phase": "Succeeded", "attempts": result.attempts, "result": entry,
                                           "started_at": result.started, "finished_at": result.finished})
        if proc.cancelled or outcome.get("cancelled"):
            return base.model_copy(update={"phase": "Cancelled", "message": "cancelled while running"})
        message = outcome.get("error") or (f"the stage wrapper exited with {code}; last output:\n"
                                           + "\n".join(proc.tail))
        return base.model_copy(update={"message": f"{message} (log: {proc.log_path})"})

    def observe(self) -> dict[str, model.Execution]:
        out: dict[str, model.Execution] = {}
        with self._lock:
            procs = list(self._procs.items())
        for exec_id, proc in procs:
            if proc.execution is not None:
                out[exec_id] = proc.execution
            else:
                inv = proc.start.invocation
                out[exec_id] = model.Execution(id=exec_id, stage=inv.stage, cache_key=inv.cache_key,
                                               run_id=inv.run_id, trial=inv.trial, phase="Running",
                                               started_at=proc.started_at, image=inv.image)
        return out

    def cancel(self, execution: str) -> None:
        with self._lock:
            proc = self._procs.get(execution)
        if proc is None or proc.execution is not None or proc.cancelled:
            return

        proc.cancelled = True
        _signal_group(proc.popen, signal.SIGTERM)
        timer = threading.Timer(self.grace + KILL_MARGIN, _signal_group, (proc.popen, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def kill(self) -> None:
        """Second interrupt: no grace for anything still running."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.execution is None:
                proc.cancelled = True
                _signal_group(proc.popen, signal.SIGKILL)

    def logs(self, execution: str) -> str:
        with self._lock:
            proc = self._procs.get(execution)
        return proc.log_path.read_text(errors="replace") if proc and proc.log_path.exists() else ""

    def wait(self, timeout: float) -> None:
        self._changed.wait(timeout)
        self._changed.clear()

    def close(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        if not procs:
            return

        for proc in procs:
            if proc.execution is None:
                self.cancel(proc.start.execution)
        for proc in procs:
            try:
                proc.popen.wait(timeout=self.grace + 2 * KILL_MARGIN)
            except subprocess.TimeoutExpired:
                _signal_group(proc.popen, signal.SIGKILL)


def stop_with_parent() -> None:
    """In the child before exec: SIGTERM it when the runner dies, even by SIGKILL (Linux
    PR_SET_PDEATHSIG), so a killed ``tycho run`` leaves no stage running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the runner's own SIGTERM handling still stops its stages


def _signal_group(popen: subprocess.Popen[str], sig: int) -> None:
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, sig)
        except ProcessLookupError:
            pass
