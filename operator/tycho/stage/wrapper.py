"""Runs one stage: fetch inputs → run user code → hash outputs → store them → write the record.

Every runner calls ``execute``: the local runner in a thread per stage, the cluster's stage
Job through ``tycho stage-exec`` (which reads the invocation from ``TYCHO_INVOCATION``).
User code only sees directories and files; it never gets storage credentials. On failure
nothing is published: outputs are uploaded content-addressed (invisible until a record
names them) and the record is written last.

Two environment variables adjust an invocation to where it runs: ``TYCHO_CODE_DIR``
replaces ``code.workdir`` (running a cluster stage's invocation on a machine where the
code lives elsewhere than in the image), and ``TYCHO_INVOCATION_ID`` replaces
``invocation_id`` (a stage Job passes its own UID, known only once the Job exists).
"""

from __future__ import annotations

import collections
import datetime as dt
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

from tycho.provenance import hashing, record, store as store_mod
from tycho.stage import contract
from tycho.stage.invocation import Invocation, Result

Log = Callable[[str], None]


class StageFailed(Exception):
    """The stage did not produce its outputs; the message says why and what to look at."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fetch_inputs(inv: Invocation, store: store_mod.Store, target: Path) -> list[dict[str, str | None]]:
    """Materialise inputs as files; verify every digest. Returns the inputs as recorded."""
    recorded: list[dict[str, str | None]] = []
    for inp in inv.inputs:
        dest = target / inp.name
        if inp.producer is not None or inp.uri.startswith(store.url + "/objects/"):
            assert inp.sha256 is not None
            store.get_file(inp.sha256, dest)
            digest = inp.sha256
        else:
            with fsspec.open(inp.uri, "rb", **store_mod.storage_options(inp.uri)) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, hashing.CHUNK)
            digest = hashing.sha256_file(dest)
            if inp.sha256 is not None and digest != inp.sha256:
                raise StageFailed(f"input {inp.name!r} from {inp.uri} has sha256 {digest}, expected {inp.sha256}; "
                                  "the data changed: update inputs[].sha256 if the change is intended")
        recorded.append({"name": inp.name, "uri": inp.uri, "sha256": digest, "producer": inp.producer})
    return recorded


def _attempt(inv: Invocation, work: Path, log: Log) -> tuple[int, str]:
    """One run of the user command; returns (exit code, tail of its output)."""
    outputs, metrics = work / "outputs", work / "metrics.jsonl"
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir()
    metrics.write_text("")
    env = contract.child_env(
        os.environ, inputs=work / "inputs", outputs=outputs, params=work / "params.json", metrics=metrics,
        stage=inv.stage, pipeline=str(inv.pipeline.get("name", "")), run_id=inv.run_id,
        env=inv.env, secret_env=inv.secret_env)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    workdir = os.environ.get("TYCHO_CODE_DIR") or inv.code.workdir
    proc = subprocess.Popen([*inv.command, *inv.args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log(line.rstrip("\n"))
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=inv.timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: no orphaned workers
        proc.wait()
        reader.join(5)
        return 124, f"timed out after {inv.timeout_seconds:g}s"
    reader.join()
    return code, "\n".join(tail)


def execute(inv: Invocation, log: Log = print) -> Result:
    """Run the stage (with retries) and publish its outputs and record. Raises StageFailed."""
    store = store_mod.Store(inv.store)
    started = now()
    with tempfile.TemporaryDirectory(prefix=f"tycho-{inv.stage}-") as tmp:
        work = Path(tmp)
        (work / "inputs").mkdir()
        inputs = _fetch_inputs(inv, store, work / "inputs")
        (work / "params.json").write_text(json.dumps(inv.params, indent=2, sort_keys=True))
        reason = ""
        attempt = 0
        for attempt in range(1, inv.attempts + 1):
            if attempt > 1:
                delay = inv.backoff_seconds * 2 ** (attempt - 2)
                log(f"[tycho] retry {attempt}/{inv.attempts} of {inv.stage} in {delay:g}s")
                time.sleep(delay)
            code, tail = _attempt(inv, work, log)
            missing = [o for o in inv.outputs if not (work / "outputs" / o).is_file()]
            if code == 0 and not missing:
                break
            reason = (f"exit code {code}" if code else f"missing outputs: {', '.join(missing)}") + (
                f"; last output:\n{tail}" if tail else "")
        else:
            raise StageFailed(f"stage {inv.stage!r} failed after {attempt} attempt(s): {reason}")
        digests = {o: store.put_file(work / "outputs" / o) for o in inv.outputs}
        uris = {o: store.uri(store.object_rel(d)) for o, d in digests.items()}
        metrics = contract.read_metrics(work / "metrics.jsonl")
        metrics_blob = store.put_file(work / "metrics.jsonl")
    finished = now()
    doc = record.build(
        stage=inv.stage, pipeline=inv.pipeline, run_id=inv.run_id,
        invocation_id=os.environ.get("TYCHO_INVOCATION_ID") or inv.invocation_id,
        outputs=digests, output_uris=uris, params=inv.params, command=inv.command, args=inv.args,
        env=inv.env, cache_key=inv.cache_key, inputs=inputs,
        code=inv.code.model_dump(exclude={"workdir"}), image=inv.image.model_dump(by_alias=False) | {
            "resolvedBy": inv.image.resolved_by},
        started=started, finished=finished, metrics=metrics, attempts=attempt)
    doc["predicate"]["runDetails"]["byproducts"].append(
        {"name": "metrics.jsonl", "digest": {"sha256": metrics_blob}, "uri": store.uri(store.object_rel(metrics_blob))})
    record_uri = publish(store, inv, doc, digests, metrics)
    return Result(stage=inv.stage, outputs=digests, output_uris=uris, record=record_uri, metrics=metrics,
                  attempts=attempt, started=started, finished=finished)


def record_rel(run_id: str, stage: str) -> str:
    return f"records/{run_id}/{stage}.json"


def publish(store: store_mod.Store, inv: Invocation, doc: dict[str, object], digests: dict[str, str],
            metrics: dict[str, float]) -> str:
    """Write the record (write-once), then the indexes that point at it."""
    uri = store.write_json_once(record_rel(inv.run_id, inv.stage), doc)
    store.write_json(f"cache/{inv.cache_key}.json",
                     {"key": inv.cache_key, "record": uri, "outputs": digests, "metrics": metrics})
    for digest in digests.values():
        if not store.exists(f"producers/{digest}.json"):
            store.write_json(f"producers/{digest}.json", {"sha256": digest, "record": uri})
    return uri
