"""Runs one stage: fetch inputs → run user code → hash outputs → store them → write the record.

Every executor runs this through ``tycho stage-exec``: as a subprocess on this machine,
as a container's entrypoint, as a stage Job's command. User code only sees directories
and files; it never gets storage credentials. On failure or cancellation nothing is
published: outputs are stored content-addressed (invisible until a record names them)
and the record is written last, then the cache entry that points at it.

``stop`` (set by the SIGTERM/SIGINT handler of ``tycho stage-exec``) stops the user's
process group: SIGTERM, ``GRACE_SECONDS``, then SIGKILL; ``execute`` then raises
``StageCancelled``. While the stage runs, new metric lines are echoed as
``[tycho] metrics {...}`` (the local progress display reads them) and published to
``live/<run>/<stage>.metrics.jsonl`` (every ``LIVE_SECONDS`` on object stores, every
``LOCAL_LIVE_SECONDS`` on a local disk), where the board draws running curves.

Two environment variables adjust an invocation to where it runs: ``TYCHO_CODE_DIR``
replaces ``workdir`` (running a cluster stage's invocation where the code lives
elsewhere than in the image), and ``TYCHO_INVOCATION_ID`` replaces ``invocation_id``
(a stage Job passes its own UID, known only once the Job exists).
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
from collections.abc import Callable
from pathlib import Path

import fsspec

from tycho.provenance import cache, code as code_mod, documents, hashing, layout, metrics as metrics_mod, record
from tycho.provenance import store as store_mod, tree
from tycho.stage import contract, imports
from tycho.stage.invocation import Invocation, Result

Log = Callable[[str], None]
GRACE_SECONDS = float(os.environ.get("TYCHO_GRACE_SECONDS", "10"))
LIVE_SECONDS = 10.0
LOCAL_LIVE_SECONDS = 2.0
METRICS_PREFIX = "[tycho] metrics "


class StageFailed(Exception):
    """The stage did not produce its outputs; the message says why and what to look at."""


class StageCancelled(Exception):
    """The stage was stopped on request (SIGTERM/SIGINT); nothing was published."""


def _fetch_inputs(inv: Invocation, store: store_mod.Store, target: Path) -> list[dict[str, str | None]]:
    """Materialise inputs as files or folders; verify every digest. Returns them as recorded."""
    recorded: list[dict[str, str | None]] = []
    for inp in inv.inputs:
        dest = target / inp.name
        if inp.url is None:
            assert inp.sha256 is not None
            if inp.type == "directory":
                tree.get(store, inp.sha256, dest)
            else:
                store.get_file(inp.sha256, dest)
            digest = inp.sha256
        else:
            with fsspec.open(inp.url, "rb", **store_mod.storage_options(inp.url)) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, hashing.CHUNK)
            digest = hashing.sha256_file(dest)
            if inp.sha256 is not None and digest != inp.sha256:
                raise StageFailed(f"input {inp.name!r} from {inp.url} has sha256 {digest}, expected {inp.sha256}; "
                                  "the data changed: update inputs[].sha256 if the change is intended")
        recorded.append({"name": inp.name, "url": inp.url, "sha256": digest, "producer": inp.producer,
                         "type": inp.type})
    return recorded


class _Metrics:
    """Follows the metrics file while the stage runs: echoes new lines, publishes the file,
    and applies a sweep trial's stop rule (``stopped`` is the step it stopped at)."""

    def __init__(self, inv: Invocation, store: store_mod.Store, path: Path, log: Log) -> None:
        self.inv, self.store, self.path, self.log = inv, store, path, log
        self.offset = 0
        self.published = 0.0
        self.size = 0
        self.best: float | None = None
        self.stopped: int | None = None

    def _check(self, line: str) -> None:
        rule = self.inv.stop_rule
        if rule is None or self.stopped is not None:
            return
        for step, value in metrics_mod.series([line]).get(rule.metric, []):
            better = max if rule.goal == "maximize" else min
            self.best = value if self.best is None else better(self.best, value)
            bar = rule.thresholds.get(step)
            if bar is not None and better(self.best, bar) == bar and self.best != bar:
                self.stopped = step
                self.log(f"[tycho] stopping early at step {step}: best {rule.metric} so far {self.best:.6g} "
                         f"is worse than the median of earlier trials, {bar:.6g}")

    def poll(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            values = metrics_mod.last_values([line])
            if values:
                self.log(METRICS_PREFIX + json.dumps(values))
            self._check(line)
        interval = LOCAL_LIVE_SECONDS if self.store.local else LIVE_SECONDS
        if (final or time.monotonic() - self.published >= interval) and self.offset != self.size:
            self.size, self.published = self.offset, time.monotonic()
            try:
                self.store.write_bytes(layout.live_metrics_rel(self.inv.run_id, self.inv.stage),
                                       self.path.read_bytes()[: self.offset])
            except OSError as err:
                self.log(f"[tycho] could not publish live metrics: {err}")


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the user's process group, a grace period, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=GRACE_SECONDS)
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


def _attempt(inv: Invocation, work: Path, store: store_mod.Store, log: Log, stop: threading.Event) -> _Attempt:
    """One run of the user command."""
    outputs, metrics = work / "outputs", work / "metrics.jsonl"
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir()
    metrics.write_text("")
    (work / "imports.txt").unlink(missing_ok=True)
    env = contract.child_env(
        os.environ, inputs=work / "inputs", outputs=outputs, params=work / "params.json", metrics=metrics,
        stage=inv.stage, pipeline=str(inv.pipeline.get("name", "")), run_id=inv.run_id,
        env=inv.env, secret_env=inv.secret_env, imports_hook=work / "hook", imports=work / "imports.txt")
    tail: collections.deque[str] = collections.deque(maxlen=20)
    workdir = os.environ.get("TYCHO_CODE_DIR") or inv.workdir
    proc = subprocess.Popen([*inv.command, *inv.args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log(line.rstrip("\n"))
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    follow = _Metrics(inv, store, metrics, log)
    deadline = time.monotonic() + inv.timeout_seconds if inv.timeout_seconds else None
    while True:
        try:
            code = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        follow.poll()
        if follow.stopped is not None:
            _stop(proc)
            reader.join(5)
            return _Attempt(0, f"stopped early at step {follow.stopped}", follow.stopped)
        if stop.is_set():
            _stop(proc)
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


def _missing(inv: Invocation, outputs: Path) -> list[str]:
    return [o.name for o in inv.outputs
            if not ((outputs / o.name).is_dir() if o.type == "directory" else (outputs / o.name).is_file())]


def _code(inv: Invocation, store: store_mod.Store, log: Log) -> documents.CodeRef:
    """The code as run. Local runs stored its archive already; in an image, archive the
    code folder now, so ``tycho reproduce`` can run exactly this code anywhere."""
    if inv.code.archive:
        return inv.code
    root = Path(os.environ.get("TYCHO_CODE_DIR") or inv.workdir)
    data = code_mod.archive(root)
    digest = store.put_bytes(data)
    if inv.code.source == "spec.code.digest" and digest != inv.code.digest:
        log(f"[tycho] warning: the code in {root} has digest {digest}, but spec.code.digest says "
            f"{inv.code.digest}: the image was built from other code than the manifest names")
    return inv.code.model_copy(update={"digest": digest, "archive": layout.object_rel(digest)})


def execute(inv: Invocation, log: Log = print, stop: threading.Event | None = None) -> Result:
    """Run the stage (with retries) and publish its outputs and record.

    Raises StageFailed (nothing published) or StageCancelled (``stop`` was set)."""
    stop = stop or threading.Event()
    store = store_mod.Store(inv.store)
    started = documents.now()
    with tempfile.TemporaryDirectory(prefix=f"tycho-{inv.stage}-") as tmp:
        work = Path(tmp)
        (work / "inputs").mkdir()
        imports.install_hook(work / "hook")
        inputs = _fetch_inputs(inv, store, work / "inputs")
        (work / "params.json").write_text(json.dumps(inv.params, indent=2, sort_keys=True))
        reason = ""
        attempt = 0
        for attempt in range(1, inv.attempts + 1):
            if attempt > 1:
                delay = inv.backoff_seconds * 2 ** (attempt - 2)
                log(f"[tycho] retry {attempt}/{inv.attempts} of {inv.stage} in {delay:g}s")
                if stop.wait(delay):
                    raise StageCancelled(f"stage {inv.stage!r} was cancelled")
            run = _attempt(inv, work, store, log, stop)
            missing = _missing(inv, work / "outputs")
            if run.stopped is not None or (run.code == 0 and not missing):
                break
            reason = (f"exit code {run.code}" if run.code else f"missing outputs: {', '.join(missing)}") + (
                f"; last output:\n{run.tail}" if run.tail else "")
        else:
            raise StageFailed(f"stage {inv.stage!r} failed after {attempt} attempt(s): {reason}")
        stopped = run.stopped
        kept = [] if stopped is not None else inv.outputs  # a stopped trial publishes no outputs
        directories = [o.name for o in kept if o.type == "directory"]
        try:
            digests = {o.name: tree.put(store, work / "outputs" / o.name) if o.type == "directory"
                       else store.put_file(work / "outputs" / o.name) for o in kept}
        except ValueError as bad:
            raise StageFailed(f"stage {inv.stage!r}: {bad}") from None
        lines = (work / "metrics.jsonl").read_text(errors="replace").splitlines()
        metrics = metrics_mod.last_values(lines)
        curve = dict(metrics_mod.series(lines).get(inv.objective, [])) if inv.objective else None
        metrics_blob = store.put_file(work / "metrics.jsonl")
        environment = imports.read(work / "imports.txt") or None
        code_ref = _code(inv, store, log)
    finished = documents.now()
    doc = record.build(
        stage=inv.stage, pipeline=inv.pipeline, run_id=inv.run_id,
        invocation_id=os.environ.get("TYCHO_INVOCATION_ID") or inv.invocation_id, executor=inv.executor,
        outputs=digests or {"metrics.jsonl": metrics_blob}, directories=directories, params=inv.params, command=inv.command, args=inv.args,
        env=inv.env, cache_key=inv.cache_key, inputs=inputs, code=code_ref, image=inv.image,
        started=started, finished=finished, metrics=metrics, metrics_blob=metrics_blob, attempts=attempt,
        environment=environment)
    record_rel = publish(store, inv, doc, documents.CacheEntry(
        key=inv.cache_key, record=layout.record_rel(inv.run_id, inv.stage, inv.trial), outputs=digests,
        directories=directories, metrics=metrics, environment=environment, curve=curve, stopped=stopped))
    return Result(stage=inv.stage, trial=inv.trial, outputs=digests, directories=directories, record=record_rel,
                  metrics=metrics, attempts=attempt, started=started, finished=finished, environment=environment,
                  curve=curve, stopped=stopped)


def publish(store: store_mod.Store, inv: Invocation, doc: dict[str, object], entry: documents.CacheEntry) -> str:
    """Write the record (write-once), then the indexes that point at it; returns its path."""
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    store.write_json_once(rel, doc)
    cache.write(store, entry)
    for digest in entry.outputs.values():
        if not store.exists(layout.producer_rel(digest)):
            store.write_json(layout.producer_rel(digest), {"sha256": digest, "record": rel})
    return rel
