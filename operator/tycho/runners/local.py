"""The local runner: drives the one scheduler on this machine with a local executor.

``run`` prepares the run (code archive, external digests, image identities), then loops:
observe the executor, ``tycho.engine.scheduler.step``, start and cancel what the step
says, save the summary when it changed, wait for the next change. ``tycho run`` and
``tycho reproduce`` call it, with the subprocess executor or a container executor.

Ctrl-C or SIGTERM cancels the run: the step cancels every running execution (SIGTERM,
a grace period, SIGKILL), the summary records ``Cancelled`` with what completed, and
the caller exits 130 or 143. A second signal kills what still runs at once. The next
run resumes from the completed stages through the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from tycho.api import models
from tycho.engine import lookup as lookup_mod, model, prepare, scheduler
from tycho.executors import base
from tycho.index import db
from tycho.provenance import audit, documents, layout, runs, signing, store as store_mod, tree
from tycho.runners import progress

POLL_SECONDS = 0.5


@dataclasses.dataclass
class Options:
    store_url: str
    manifest_dir: Path
    code: documents.CodeRef | None = None  # reproduce: the recorded code ...
    code_dir: Path | None = None  # ... restored here
    force: bool = False  # reproduce: ignore the cache
    reproduces: str | None = None
    logs_dir: Path = Path(".tycho/logs")
    view_dir: Path | None = Path(".tycho/runs")
    max_parallel: int | None = None


@dataclasses.dataclass
class Outcome:
    summary: documents.RunSummary
    signal: int | None = None
    """The signal that cancelled the run, if one did."""

    @property
    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        return 0 if self.summary.phase == "Succeeded" else 1


class _Signals:
    """SIGINT/SIGTERM become a cancel request instead of an exception or a sudden death."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum
        self.count += 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def context(pipeline: models.ExperimentPipeline, opts: Options, store: store_mod.Store,
            executor: base.LocalExecutor, run_id: str) -> model.Context:
    """The run's fixed context: code identity, images, external digests."""
    restored = (opts.code, opts.code_dir) if opts.code is not None and opts.code_dir is not None else None
    code, workdir = executor.code(pipeline, store, opts.manifest_dir, restored)
    images = {s.name: executor.image(s) for s in pipeline.spec.stages}
    return model.Context(pipeline=pipeline, run_id=run_id, store=store.url, code=code, workdir=workdir,
                         images={n: i[0] for n, i in images.items()},
                         image_parts={n: i[1] for n, i in images.items()},
                         external=prepare.external_digests(pipeline), executor=executor.kind, force=opts.force)


def new_summary(pipeline: models.ExperimentPipeline, ctx: model.Context, executor: base.Executor,
                reproduces: str | None) -> documents.RunSummary:
    spec = pipeline.spec
    runner = runs.this_process().model_copy(update={"executor": executor.kind})
    now = documents.now()
    return documents.RunSummary(
        run_id=ctx.run_id, pipeline=pipeline.metadata.name, created_at=now, heartbeat_at=now, runner=runner,
        store=ctx.store, description=spec.description, owner=spec.owner, tags=list(spec.tags), reproduces=reproduces,
        code=ctx.code, environment=dict(ctx.image_parts[spec.stages[0].name].get("environment") or {}) or None,
        spec_digest=scheduler.spec_digest(spec), external=dict(ctx.external),
        manifest=pipeline.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}),
        stages={s.name: documents.StageResult(name=s.name) for s in spec.stages})


def run(pipeline: models.ExperimentPipeline, opts: Options, reporter: progress.Reporter,
        executor: base.LocalExecutor) -> Outcome:
    """Run the pipeline to the end (or until cancelled); the summary is also stored."""
    store = store_mod.Store(opts.store_url)
    if opts.max_parallel:
        pipeline = pipeline.model_copy(update={"spec": pipeline.spec.model_copy(
            update={"max_parallel": opts.max_parallel})})
    run_id = runs.new_run_id(pipeline.metadata.name)
    ctx = context(pipeline, opts, store, executor, run_id)
    summary = new_summary(pipeline, ctx, executor, opts.reproduces)
    runs.save(store, summary)
    key_file = getattr(executor, "signing_key", None)
    if key_file is not None:
        signing.ensure_key(key_file)
    lookup = lookup_mod.StoreLookup(store, executor.admit, audit.trusted_keys(store, [key_file] if key_file else []))
    suggest = lookup_mod.StoreSuggestions(store)
    signals = _Signals()
    reporter.start(run_id, [s.name for s in pipeline.spec.stages])
    saved, beat = summary, time.monotonic()
    try:
        with signals.installed():
            while True:
                if signals.count > 1 and hasattr(executor, "kill"):
                    executor.kill()
                obs = model.Observed(stages=summary.stages, executions=executor.observe(), lookup=lookup,
                                     now=documents.now(), cancel=signals.received is not None, suggest=suggest)
                plan = scheduler.step(ctx, obs)
                for execution in plan.cancel:
                    executor.cancel(execution)
                for start in plan.start:
                    executor.start(start)
                _report(reporter, summary.stages, plan.stages)
                summary = summary.model_copy(update={"stages": plan.stages, "phase": plan.phase})
                if plan.finished:
                    break
                if summary != saved or time.monotonic() - beat > runs.HEARTBEAT_SECONDS:
                    summary = summary.model_copy(update={"heartbeat_at": documents.now()})
                    runs.save(store, summary, indexed=True)
                    saved, beat = summary, time.monotonic()
                executor.wait(POLL_SECONDS)
    finally:
        reporter.stop()
        executor.close()
    if signals.received is not None:
        summary = summary.model_copy(update={
            "phase": "Cancelled", "message": f"cancelled by {signal.Signals(signals.received).name}"})
    summary = summary.model_copy(update={"finished_at": documents.now(), "heartbeat_at": documents.now()})
    digest = runs.save(store, summary, indexed=True)
    runs.seal(store, summary, signing.load_private(key_file) if key_file is not None else None, digest)
    _index(store, summary)
    if opts.view_dir is not None:
        view(store, summary, opts.view_dir / run_id)
    return Outcome(summary, signals.received)


def _index(store: store_mod.Store, summary: documents.RunSummary) -> None:
    """Add the finished run to this machine's run index (a cache: a failure here only means
    the next ``tycho runs`` reads the summary from the store instead)."""
    try:
        index = db.Index(store)
        try:
            index.add(summary)
        finally:
            index.close()
    except (OSError, sqlite3.Error):
        pass


def _report(reporter: progress.Reporter, old: dict[str, documents.StageResult],
            new: dict[str, documents.StageResult]) -> None:
    for name, result in new.items():
        before = old.get(name)
        if before is None or before.phase != result.phase:
            reporter.stage(name, result)


def view(store: store_mod.Store, summary: documents.RunSummary, target: Path) -> None:
    """Readable links to the outputs of the stages this run executed, under ``target``
    (local stores only; cache hits are the outputs of the run that made them)."""
    if not store.local:
        return
    for name, result in summary.stages.items():
        if result.phase != "Succeeded":
            continue
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        directories = _directories(summary, name)
        for output, digest in result.outputs.items():
            if output in directories:
                for entry in tree.load(store, digest).entries:
                    link(store.local_path(layout.object_rel(entry.sha256)), folder / output / entry.path)
            else:
                link(store.local_path(layout.object_rel(digest)), folder / output)


def _directories(summary: documents.RunSummary, stage: str) -> set[str]:
    spec = summary.manifest.get("spec", {})
    found: dict[str, Any] = next((s for s in spec.get("stages", []) if s.get("name") == stage), {})
    return {o["name"] for o in found.get("outputs", []) if isinstance(o, dict) and o.get("type") == "directory"}


def link(source: Path, dest: Path) -> None:
    """A reflink (copy-on-write) where the file system has them, else a hard link to the
    read-only stored object, else a copy: never a writable alias of stored bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    if _reflink(source, dest):
        return
    try:
        os.link(source, dest)
    except OSError:
        import shutil
        shutil.copyfile(source, dest)


def _reflink(source: Path, dest: Path) -> bool:
    try:
        import fcntl
        with open(source, "rb") as src, open(dest, "wb") as out:
            fcntl.ioctl(out.fileno(), 0x40049409, src.fileno())  # FICLONE
        return True
    except OSError:
        dest.unlink(missing_ok=True)
        return False
