"""Runs one stage: fetch inputs → run user code → hash outputs → store them → write the record.

Every executor runs this through ``tycho stage-exec``: as a subprocess on this machine,
as a container's entrypoint, as a stage Job's command. User code only sees directories
and files; it never gets storage credentials. On failure or cancellation nothing is
published: outputs are stored content-addressed (invisible until a record names them)
and the record is written last, then the cache entry that points at it.

``stop`` (set by the SIGTERM/SIGINT handler of ``tycho stage-exec``) stops the user's
process group: SIGTERM, ``GRACE_SECONDS``, then SIGKILL; ``execute`` then raises
``StageCancelled``. While the stage runs, new metric lines are echoed as
``[tycho] metrics {...}`` (the local progress display reads them) and, on object
stores, published to ``live/<run>/<stage>.metrics.jsonl`` every ``LIVE_SECONDS``.

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
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tycho.provenance import cache, code as code_mod, documents, hashing, layout, metrics as metrics_mod, record
from tycho.provenance import store as store_mod, tree
from tycho.provenance import signing
from tycho.stage import checks as checks_mod, contract, facts, imports
from tycho.stage.invocation import Invocation, Result

Log = Callable[[str], None]
GRACE_SECONDS = float(os.environ.get("TYCHO_GRACE_SECONDS", "10"))
LIVE_SECONDS = 10.0
LOCAL_LIVE_SECONDS = 2.0
METRICS_LOG = "metrics.jsonl"
"""The only output a sweep trial stopped early keeps (its record's subject)."""
METRICS_PREFIX = "[tycho] metrics "
SBOM_ENV = "TYCHO_IMAGE_SBOM"
"""Set by a stage image: the path of its CycloneDX SBOM (images/stage/Dockerfile)."""


class StageFailed(Exception):
    """The stage did not produce its outputs; the message says why and what to look at."""


class StageCancelled(Exception):
    """The stage was stopped on request (SIGTERM/SIGINT); nothing was published."""


class Work:
    """The work directory the phases share (on a cluster: three volumes of the stage pod).

    ``in/`` (inputs, params; written by fetch, read-only to the stage), ``out/``
    (outputs, metrics, what the run noted; written by the stage, read by publish) and
    ``state/`` (what fetch verified; never mounted where stage code runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs, self.params = root / "in" / "inputs", root / "in" / "params.json"
        self.out = root / "out"
        self.outputs, self.metrics = self.out / "outputs", self.out / "metrics.jsonl"
        self.imports, self.frameworks, self.ran = self.out / "imports.txt", self.out / "frameworks.jsonl", self.out / "run.json"
        self.checks = self.out / "checks.jsonl"
        self.code = self.out / "code.tar"
        """The code the stage ran, archived by the run phase when it is not in the store yet
        (in an image: only the run phase sees the image's code)."""
        self.sbom = self.out / "image-sbom.cdx.json"
        """The SBOM of the image the run phase ran in (a copy of ``$TYCHO_IMAGE_SBOM``)."""
        self.fetched = root / "state" / "fetched.json"


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
            import fsspec  # URL inputs only

            with fsspec.open(inp.url, "rb", **store_mod.storage_options(inp.url)) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, hashing.CHUNK)
            digest = hashing.sha256_file(dest)
            if inp.sha256 is not None and digest != inp.sha256:
                raise StageFailed(f"input {inp.name!r} from {inp.url} has sha256 {digest}, expected {inp.sha256}; "
                                  "the data changed: update inputs[].sha256 if the change is intended")
        recorded.append({"name": inp.name, "url": inp.url, "sha256": digest, "producer": inp.producer,
                         "type": inp.type})
    return recorded


def read_regular(path: Path, offset: int = 0) -> bytes:
    """A file the stage wrote, read by a process that holds the store credentials (the
    live-metrics sidecar, publish): never through a symlink the stage may have put there
    (to ``/proc/self/environ``, to the signing key)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        f.seek(offset)
        return f.read()


def check_out(inv: Invocation, work: Work) -> None:
    """What the run phase left in ``out/`` holds regular files and folders only. Publish
    runs with the store credentials and the signing key and reads these paths: a symlink
    would carry whatever it points to into the store as an output (a stage in a container
    or pod cannot read the credentials, but it can name them)."""
    for dirpath, dirnames, filenames in os.walk(work.out):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                raise StageFailed(f"stage {inv.stage!r}: {path.relative_to(work.root)} is {kind}; outputs, metrics "
                                  "and checks must be regular files (copy the file instead of linking it)")


class _Metrics:
    """Follows the metrics file while the stage runs: echoes new lines, publishes the file
    (when this process may reach the store), and applies a sweep trial's stop rule
    (``stopped`` is the step it stopped at)."""

    def __init__(self, inv: Invocation, store: store_mod.Store | None, path: Path, log: Log) -> None:
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
        better = max if rule.goal == "maximize" else min
        for step, value in metrics_mod.series([line]).get(rule.metric, []):
            self.best = value if self.best is None else better(self.best, value)
            bar = rule.thresholds.get(step)
            if bar is not None and self.best != bar and better(self.best, bar) == bar:
                self.stopped = step
                self.log(f"[tycho] stopping early at step {step}: best {rule.metric} so far {self.best:.6g} "
                         f"is worse than the median of earlier trials, {bar:.6g}")

    def poll(self, final: bool = False) -> None:
        try:
            chunk = read_regular(self.path, self.offset)
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            values = metrics_mod.last_values([line])
            if values:
                self.log(METRICS_PREFIX + json.dumps(values))
            self._check(line)
        interval = LOCAL_LIVE_SECONDS if self.store is not None and self.store.local else LIVE_SECONDS
        if self.store is not None and (final or time.monotonic() - self.published >= interval) \
                and self.offset != self.size:
            self.size, self.published = self.offset, time.monotonic()
            try:
                self.store.write_bytes(layout.live_metrics_rel(self.inv.run_id, self.inv.stage, self.inv.trial),
                                       read_regular(self.path)[: self.offset])
            except OSError as err:
                self.log(f"[tycho] could not publish live metrics: {err}")


def mask(line: str, secrets: list[str]) -> str:
    """A line of stage output with the values of the stage's Secret-backed variables hidden:
    what the stage prints becomes pod logs, termination messages, status and events."""
    for value in secrets:
        if value in line:
            line = line.replace(value, "***")
    return line


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


def _attempt(inv: Invocation, work: Work, hook: Path, store: store_mod.Store | None, log: Log,
             stop: threading.Event) -> _Attempt:
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
    follow = _Metrics(inv, store, work.metrics, log)
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


def _missing(inv: Invocation, outputs: Path) -> list[str]:
    return [o.name for o in inv.outputs
            if not ((outputs / o.name).is_dir() if o.type == "directory" else (outputs / o.name).is_file())]


def code_root(inv: Invocation) -> Path:
    """Where the stage's code is, for the process that runs it."""
    return Path(os.environ.get("TYCHO_CODE_DIR") or inv.workdir)


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


def _code(inv: Invocation, store: store_mod.Store, work: Work, log: Log) -> documents.CodeRef:
    """The code as run. Local runs stored its archive already; in an image, the run phase
    archived it, so ``tycho reproduce`` can run exactly this code anywhere."""
    if inv.code.archive:
        return inv.code
    if not work.code.is_file():
        raise StageFailed(f"stage {inv.stage!r}: the run phase left no code archive ({work.code.name})")
    digest = store.put_file(work.code)
    if inv.code.source == "spec.code.digest" and digest != inv.code.digest:
        log(f"[tycho] warning: the code in {inv.workdir} has digest {digest}, but spec.code.digest says "
            f"{inv.code.digest}: the image was built from other code than the manifest names")
    return inv.code.model_copy(update={"digest": digest, "archive": layout.object_rel(digest)})


# ---- the three phases: fetch (store access), run (no store access), publish (store access) ----
def fetch(inv: Invocation, store: store_mod.Store, work: Work) -> None:
    """Materialise inputs and params; note what was verified where stage code cannot write."""
    for folder in (work.inputs, work.fetched.parent):  # in a pod: the two volumes fetch may write
        folder.mkdir(parents=True, exist_ok=True)
    started = documents.now()
    inputs = _fetch_inputs(inv, store, work.inputs)
    work.params.write_text(json.dumps(inv.params, indent=2, sort_keys=True))
    work.fetched.write_text(json.dumps({"started": started, "inputs": inputs}))


def run(inv: Invocation, work: Work, log: Log = print, stop: threading.Event | None = None,
        store: store_mod.Store | None = None) -> bool:
    """Run the user's command (with retries) with no store credentials in its environment;
    notes the outcome and the execution environment in ``out/run.json``. ``store`` (local
    runs only) receives live metrics."""
    began = time.time()
    stop = stop or threading.Event()
    work.out.mkdir(parents=True, exist_ok=True)
    reason, attempt, ok, stopped = "", 0, False, None
    with tempfile.TemporaryDirectory(prefix="tycho-hook-") as hook_dir:
        hook = imports.install_hook(Path(hook_dir))
        for attempt in range(1, inv.attempts + 1):
            if attempt > 1:
                delay = inv.backoff_seconds * 2 ** (attempt - 2)
                log(f"[tycho] retry {attempt}/{inv.attempts} of {inv.stage} in {delay:g}s")
                if stop.wait(delay):
                    raise StageCancelled(f"stage {inv.stage!r} was cancelled")
            killed_before = oom_kills()
            attempted = _attempt(inv, work, hook, store, log, stop)
            failed = [c for c in checks_mod.read(work.checks) if c.severity == "fail"]
            if failed:  # a finding about the data or the model: another attempt finds it again
                reason = "; ".join(f"check {c.code} failed: {c.message}" for c in failed)
                break
            missing = _missing(inv, work.outputs)
            if attempted.stopped is not None or (attempted.code == 0 and not missing):
                ok, stopped = True, attempted.stopped
                break
            reason = (f"exit code {attempted.code}" if attempted.code else f"missing outputs: {', '.join(missing)}") + (
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
    follow = _Metrics(inv, store, work.metrics, lambda line: None)
    while not stop.is_set() and not work.ran.exists():
        follow.poll()
        stop.wait(1.0)
    stop.wait()


def publish(inv: Invocation, store: store_mod.Store, work: Work, log: Log = print) -> Result:
    """Hash and store the outputs, then the record (write-once, signed), then the indexes."""
    check_out(inv, work)
    fetched = json.loads(work.fetched.read_text())
    ran: dict[str, Any] = json.loads(work.ran.read_text()) if work.ran.is_file() else {"ok": False, "reason": "the stage did not run"}
    if not ran.get("ok"):
        raise StageFailed(f"stage {inv.stage!r} failed after {ran.get('attempts', 0)} attempt(s): {ran.get('reason')}")
    stopped: int | None = ran.get("stopped")
    if stopped is None and (missing := _missing(inv, work.outputs)):
        raise StageFailed(f"stage {inv.stage!r}: missing outputs: {', '.join(missing)}")
    if (adopted := _adopt(store, inv)) is not None:
        log(f"[tycho] {adopted.record} was published by an earlier attempt of this execution: kept")
        return adopted
    kept = [] if stopped is not None else inv.outputs  # a trial stopped early keeps only its metrics log
    directories = [o.name for o in kept if o.type == "directory"]
    try:
        digests = {o.name: tree.put(store, work.outputs / o.name) if o.type == "directory"
                   else store.put_file(work.outputs / o.name) for o in kept}
    except ValueError as bad:
        raise StageFailed(f"stage {inv.stage!r}: {bad}") from None
    lines = work.metrics.read_text(errors="replace").splitlines() if work.metrics.is_file() else []
    metrics = metrics_mod.last_values(lines)
    curve = dict(metrics_mod.series(lines).get(inv.objective, [])) if inv.objective else None
    metrics_log = store.put_bytes("\n".join(lines).encode() + (b"\n" if lines else b""))
    if stopped is not None:
        digests = {METRICS_LOG: metrics_log}
    metrics_blob = store.put_bytes(_canonical(metrics))
    checks = checks_mod.read(work.checks)
    checks_blob = store.put_bytes(_canonical([c.model_dump(mode="json") for c in checks])) if checks else None
    distributions = imports.read(work.imports) or None
    environment_blob = store.put_bytes(_canonical({"distributions": distributions or {}, "execution": ran["facts"]}))
    code_ref = _code(inv, store, work, log)
    sbom = store.put_file(work.sbom) if work.sbom.is_file() else None
    doc = record.build(
        stage=inv.stage, pipeline=inv.pipeline, run_id=inv.run_id,
        invocation_id=os.environ.get("TYCHO_INVOCATION_ID") or inv.invocation_id, executor=inv.executor,
        outputs=digests, directories=directories, params=inv.params, command=inv.command, args=inv.args,
        env=inv.env, cache_key=inv.cache_key, key_components=inv.key_components, inputs=fetched["inputs"],
        code=code_ref, image=inv.image, started=fetched["started"], finished=documents.now(),
        metrics_blob=metrics_blob, metrics_log=metrics_log, environment_blob=environment_blob,
        attempts=int(ran["attempts"]), trial=inv.trial, stopped=stopped, checks_blob=checks_blob, image_sbom=sbom)
    entry = documents.CacheEntry(key=inv.cache_key, record=layout.record_rel(inv.run_id, inv.stage, inv.trial),
                                 outputs=digests, directories=directories, metrics=metrics, environment=distributions,
                                 curve=curve, stopped=stopped, checks=checks)
    record_rel = write_record(store, inv, doc, entry)
    store.delete(layout.live_metrics_rel(inv.run_id, inv.stage, inv.trial))  # the record holds the series now
    meta = doc["predicate"]["runDetails"]["metadata"]
    return Result(stage=inv.stage, trial=inv.trial, outputs=digests, directories=directories, record=record_rel,
                  metrics=metrics, attempts=int(ran["attempts"]), started=meta["startedOn"],
                  finished=meta["finishedOn"], environment=distributions, curve=curve, stopped=stopped, checks=checks)


def _adopt(store: store_mod.Store, inv: Invocation) -> Result | None:
    """An earlier attempt of this execution that died after writing its record (a publish
    interrupted by a store outage or a killed pod): the record stands, the signature and
    indexes it may lack are completed, so a retried Job converges instead of failing on
    the write-once record."""
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    if not store.exists(rel):
        return None
    data = store.read_bytes(rel)
    doc = json.loads(data)
    if doc["predicate"]["buildDefinition"]["internalParameters"]["cacheKey"] != inv.cache_key:
        raise StageFailed(f"{rel} already exists for another cache key; records are write-once")
    metrics = json.loads(store.get_bytes(record.byproduct_digest(doc, "metrics") or ""))
    env_digest = record.byproduct_digest(doc, "environment")
    distributions = (json.loads(store.get_bytes(env_digest)).get("distributions") or None) if env_digest else None
    outputs, directories = record.outputs_of(doc), record.directories_of(doc)
    internal = doc["predicate"]["buildDefinition"]["internalParameters"]
    checks_digest = record.byproduct_digest(doc, "checks")
    checks = [documents.Check.model_validate(c) for c in json.loads(store.get_bytes(checks_digest))] \
        if checks_digest else []
    metrics_log = record.byproduct_digest(doc, "metrics.jsonl")
    lines = store.get_bytes(metrics_log).decode(errors="replace").splitlines() if metrics_log else []
    curve = dict(metrics_mod.series(lines).get(inv.objective, [])) if inv.objective else None
    _sign_and_index(store, inv, data, documents.CacheEntry(
        key=inv.cache_key, record=rel, outputs=outputs, directories=directories, metrics=metrics,
        environment=distributions, curve=curve, stopped=internal.get("stoppedAt"), checks=checks))
    meta = doc["predicate"]["runDetails"]["metadata"]
    return Result(stage=inv.stage, trial=inv.trial, outputs=outputs, directories=directories, record=rel,
                  metrics=metrics, attempts=int(internal["attempts"]), started=meta["startedOn"],
                  finished=meta["finishedOn"], environment=distributions, curve=curve,
                  stopped=internal.get("stoppedAt"), checks=checks)


def _canonical(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def execute(inv: Invocation, log: Log = print, stop: threading.Event | None = None) -> Result:
    """All three phases in this process (local executors): the store credentials stay in
    the wrapper, the user's process gets only its contract environment.

    Raises StageFailed (nothing published) or StageCancelled (``stop`` was set)."""
    store = store_mod.Store(inv.store)
    with tempfile.TemporaryDirectory(prefix=f"tycho-{inv.stage}-") as tmp:
        work = Work(Path(tmp))
        fetch(inv, store, work)
        run(inv, work, log, stop, store)
        return publish(inv, store, work, log)


def write_record(store: store_mod.Store, inv: Invocation, doc: dict[str, object], entry: documents.CacheEntry) -> str:
    """Write the record (write-once) and its signature, then the indexes that point at it."""
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    data = record.encode(doc)
    store.write_bytes_once(rel, data)
    _sign_and_index(store, inv, data, entry)
    return rel


def _sign_and_index(store: store_mod.Store, inv: Invocation, data: bytes, entry: documents.CacheEntry) -> None:
    rel = layout.record_rel(inv.run_id, inv.stage, inv.trial)
    key = signing.configured_key()
    att = layout.attestation_rel(inv.run_id, inv.stage, inv.trial)
    if key is not None and not store.exists(att):
        kid = signing.keyid(key.public_key())
        if not store.exists(layout.key_rel(kid)):
            store.write_bytes(layout.key_rel(kid), signing.public_pem(key.public_key()))
        store.write_bytes_once(att, signing.sign(data, key).encode())
    cache.write(store, entry)
    for digest in entry.outputs.values():
        if not store.exists(layout.producer_rel(digest)):
            store.write_json(layout.producer_rel(digest), {"sha256": digest, "record": rel})
