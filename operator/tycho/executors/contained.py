"""The host side of a stage execution whose user code runs in a container.

``tycho stage-exec --container RUN.json`` runs this, one process per execution, started
by the container executor (``tycho.executors.container``). The phases are those of a
stage pod (``tycho.stage.wrapper``): ``fetch`` here, with the store credentials, into a
work folder; ``live`` here too (a thread that publishes the growing metrics file); ``run``
in the stage's image through the engine (``engines.run_args``: no store credentials, no
signing key, no network unless declared, the stage's limits); then ``publish`` here
(store credentials, signing key), which also stores the code archive and image SBOM the
run phase left in ``out/``.

``stop`` (SIGTERM/SIGINT of this process) stops the container the engine's way: SIGTERM
to its wrapper, which stops the user's processes (its grace period, the same
``GRACE_SECONDS`` as here, then SIGKILL), and SIGKILL from the engine one second later —
before the executor's own deadline for this process (``GRACE_SECONDS`` + ``KILL_MARGIN``),
so the container is removed by this process and not left behind. Nothing is published then.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tycho import settings
from tycho.executors import engines, process
from tycho.provenance import store as store_mod
from tycho.stage import fetch as fetch_mod, publish as publish_mod, supervise, work as work_mod
from tycho.stage.invocation import Invocation, Result

ENGINE_ERROR = 125
"""podman's and docker's exit status when the engine itself failed (bad image, option, ...)."""


def execute(inv: Invocation, run: engines.ContainerRun, log: work_mod.Log,
            stop: threading.Event | None = None) -> Result:
    """fetch → run (in the container) → publish. Raises StageFailed or StageCancelled."""
    stop = stop or threading.Event()
    grace = settings.grace_seconds()
    store = store_mod.Store(inv.store)
    # ignore_cleanup_errors: with docker as a non-root user, out/ holds files of uid 10001
    with tempfile.TemporaryDirectory(prefix=f"tycho-{inv.stage}-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        work = work_mod.Work(root)
        fetch_mod.fetch(inv, store, work)
        invocation = root / "invocation.json"
        invocation.write_text(inv.model_dump_json())
        _share(root, run.engine)
        done = threading.Event()
        live = threading.Thread(target=supervise.live, args=(inv, store, work, done), daemon=True, name="live")
        live.start()
        try:
            code, began = _run(inv, run, root, invocation, log, stop, grace)
        finally:
            done.set()
            live.join(timeout=30)
        if stop.is_set():
            raise work_mod.StageCancelled(f"stage {inv.stage!r} was cancelled")
        work_mod.check_out(inv, work)  # before anything here reads what the container left
        if began is not None:
            log(f"[tycho] container: the wrapper started {began:.2f}s after {run.engine.name} run")
        if code != 0:
            raise work_mod.StageFailed(_failure(inv, run, work, code))
        return publish_mod.publish(inv, store, work, log)


def _share(root: Path, engine: engines.Engine) -> None:
    """in/ readable and out/ writable by the container's user (uid 10001, or the caller
    mapped to it by rootless podman)."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    for path in [root / "in", *(root / "in").rglob("*"), root / "invocation.json"]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    if engine.rootless:
        return
    if os.geteuid() == 0:
        os.chown(out, engines.USER, engines.USER)
    else:  # docker as a member of its group: the container's user cannot be chowned to
        out.chmod(0o777)


def _run(inv: Invocation, run: engines.ContainerRun, root: Path, invocation: Path, log: work_mod.Log,
         stop: threading.Event, grace: float) -> tuple[int, float | None]:
    """The run phase in its container; (exit status, seconds from the engine command to the
    wrapper's start inside, when it started)."""
    engine = run.engine
    started = time.time()
    if stop.is_set():  # cancelled while fetching: start nothing
        return 0, None
    proc = subprocess.Popen(engines.run_args(run, str(root), str(invocation), grace),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            errors="replace", preexec_fn=process.stop_with_parent)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop.is_set():
                engines.stop(engine, run.name, grace + 1)
                try:  # a stop that found no container yet (still being created) stopped nothing
                    code = proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    engines.remove(engine, run.name)
                    proc.kill()
                    code = proc.wait()
                break
        reader.join(10)
        if code != 0 and engines.oom_killed(engine, run.name):  # the wrapper itself was killed
            (root / "state" / "oom").write_text("")
    finally:
        engines.remove(engine, run.name)
    ran = root / "out" / "run.json"
    began = None
    if ran.is_file():
        try:
            began = float(json.loads(ran.read_text()).get("began")) - started
        except (ValueError, TypeError):
            began = None
    return code, began


def _failure(inv: Invocation, run: engines.ContainerRun, work: work_mod.Work, code: int) -> str:
    """Why the run phase failed, in the user's terms."""
    reason = ""
    if work.ran.is_file():
        try:
            ran = json.loads(work.ran.read_text())
            reason = f"failed after {ran.get('attempts', 0)} attempt(s): {ran.get('reason')}"
        except ValueError:
            pass
    limit = f" (limit {run.memory / 2**20:.0f} MiB; raise resources.memory)" if run.memory else ""
    if (work.root / "state" / "oom").exists() or "out of memory" in reason:
        return f"stage {inv.stage!r} ran out of memory in its container{limit}: {reason or f'exit {code}'}"
    if reason:
        return f"stage {inv.stage!r} {reason}"
    if code == ENGINE_ERROR:
        return (f"stage {inv.stage!r}: {run.engine.name} could not run image {run.image} (exit {code}); "
                "see the stage log")
    return f"stage {inv.stage!r}: its container exited with {code} before the stage finished; see the stage log"
