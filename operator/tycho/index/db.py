"""The index file: open it, keep it in step with the store, rebuild it.

The store is the truth and the index a cache of its ``runs/`` folder (``tycho.index.rows``
says what is kept of each summary). ``sync`` is incremental: it lists ``runs/`` with each
file's fingerprint (size and mtime on a disk, ETag on S3), reloads only the summaries
that changed, drops the ones that went away and re-checks whether runs still marked
Running are alive. On a local store an unchanged ``runs/`` folder (its mtime: summaries
are replaced by rename) skips the listing. Every command that reads runs syncs first;
``tycho run`` adds its run when it ends; ``tycho index rebuild`` starts from nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tycho.api import phases
from tycho.provenance import layout

if TYPE_CHECKING:
    from tycho.provenance import documents, store as store_mod

SCHEMA_VERSION = "3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY, run_id TEXT UNIQUE NOT NULL, pipeline TEXT NOT NULL, owner TEXT, phase TEXT,
  created_at TEXT, finished_at TEXT, heartbeat_at TEXT, executor TEXT, host TEXT, pid INTEGER, namespace TEXT,
  description TEXT, message TEXT, reproduces TEXT, code_digest TEXT, code_commit TEXT, spec_digest TEXT,
  stages INTEGER, executed INTEGER, hits INTEGER, headline_name TEXT, headline_value REAL,
  repeat_of TEXT, duration REAL, verified TEXT, stamp TEXT);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs(pipeline, created_at);
CREATE INDEX IF NOT EXISTS runs_repeat ON runs(repeat_of);
CREATE INDEX IF NOT EXISTS runs_phase ON runs(phase);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
  runs INTEGER NOT NULL DEFAULT 0, UNIQUE(name, kind));
CREATE TABLE IF NOT EXISTS vals(run INTEGER NOT NULL, name INTEGER NOT NULL, num REAL, text TEXT,
  PRIMARY KEY(run, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vals_by_name ON vals(name, num);
CREATE TABLE IF NOT EXISTS tags(run INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(run, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tag, run);
CREATE TABLE IF NOT EXISTS stages(run INTEGER NOT NULL, name TEXT NOT NULL, position INTEGER, phase TEXT,
  cache_key TEXT, cache_hit INTEGER, record TEXT, started_at TEXT, finished_at TEXT, image_digest TEXT,
  PRIMARY KEY(run, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stages_key ON stages(cache_key);
CREATE TABLE IF NOT EXISTS io(digest TEXT NOT NULL, run INTEGER NOT NULL, stage TEXT NOT NULL, role TEXT NOT NULL,
  name TEXT NOT NULL, PRIMARY KEY(digest, run, stage, role, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS io_by_run ON io(run);
"""
_RUN_COLUMNS = ("run_id", "pipeline", "owner", "phase", "created_at", "finished_at", "heartbeat_at", "executor",
                "host", "pid", "namespace", "description", "message", "reproduces", "code_digest", "code_commit",
                "spec_digest", "stages", "executed", "hits", "headline_name", "headline_value", "repeat_of",
                "duration")


@dataclasses.dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unreadable: list[str] = dataclasses.field(default_factory=list)
    listed: bool = False
    seconds: float = 0.0


def _regexp(pattern: str, value: object) -> bool:
    if value is None:
        return False
    try:
        return re.search(pattern, value if isinstance(value, str) else repr(value)) is not None
    except re.error:
        return False


class Index:
    """One open index of one store."""

    def __init__(self, store: store_mod.Store | str, path: str | None = None) -> None:
        """``store``: a Store, or its URL (the store client, and fsspec with it, is then made
        only when a summary has to be read: ``tycho runs`` with nothing new starts faster)."""
        self._store = None if isinstance(store, str) else store
        self.url = layout.resolve_url(store).rstrip("/") if isinstance(store, str) else store.url
        self.local_dir = Path(self.url[len("file://"):]) if self.url.startswith("file://") else None
        self.path = path or layout.index_file(self.url)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = _connect(self.path)
        self._names: dict[tuple[str, str], int] = {}
        schema, url = self._meta("schema"), self._meta("store")
        if schema == SCHEMA_VERSION and url == self.url:
            return  # made by this version for this store: no schema work, no write
        if schema != SCHEMA_VERSION or url is not None:
            self.conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(self.path + suffix).unlink(missing_ok=True)
            self.conn = _connect(self.path)
        self.conn.executescript(SCHEMA)
        with self.conn:
            self._set_meta("schema", SCHEMA_VERSION)
            self._set_meta("store", self.url)

    @property
    def store(self) -> store_mod.Store:
        if self._store is None:
            from tycho.provenance import store as store_mod

            self._store = store_mod.Store(self.url)
        return self._store

    @classmethod
    def reader(cls, store: store_mod.Store, path: str) -> Index:
        """A second connection to an index another ``Index`` keeps in step (the board's
        request threads): no schema work, never syncs."""
        index = cls.__new__(cls)
        index._store, index.url, index.path, index._names = store, store.url, path, {}
        index.local_dir = Path(store.url[len("file://"):]) if store.local else None
        index.conn = _connect(path)
        return index

    def close(self) -> None:
        self.conn.close()

    # ---- meta ---------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    # ---- writing ----------------------------------------------------------------------
    def name_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        found = self._names.get(key)
        if found is None:
            row = self.conn.execute("SELECT id FROM names WHERE kind=? AND name=?", key).fetchone()
            if row is None:
                found = int(self.conn.execute("INSERT INTO names(kind, name) VALUES(?, ?)", key).lastrowid or 0)
            else:
                found = int(row[0])
            self._names[key] = found
        return found

    def _forget(self, rid: int) -> None:
        self.conn.execute("UPDATE names SET runs = runs - 1 WHERE id IN (SELECT name FROM vals WHERE run=?)", (rid,))
        for table in ("vals", "tags", "stages"):
            self.conn.execute(f"DELETE FROM {table} WHERE run=?", (rid,))
        self.conn.execute("DELETE FROM io WHERE run=?", (rid,))

    def put(self, summary: documents.RunSummary, stamp: str | None = None) -> bool:
        """Add or replace one run (the caller commits); True when it was new."""
        from tycho.index import rows as rows_mod

        row = rows_mod.of(summary)
        values = [getattr(row, c) for c in _RUN_COLUMNS]
        old = self.conn.execute("SELECT id FROM runs WHERE run_id=?", (row.run_id,)).fetchone()
        if old is None:
            cols = ", ".join(_RUN_COLUMNS)
            rid = int(self.conn.execute(
                f"INSERT INTO runs({cols}, stamp) VALUES({', '.join('?' * len(_RUN_COLUMNS))}, ?)",
                (*values, stamp)).lastrowid or 0)
        else:
            rid = int(old[0])
            self._forget(rid)
            sets = ", ".join(f"{c}=?" for c in _RUN_COLUMNS)
            # a changed summary is checked again: its verification answered for the old one
            self.conn.execute(f"UPDATE runs SET {sets}, stamp=?, verified=NULL WHERE id=?", (*values, stamp, rid))
        ids = [self.name_id(v.kind, v.name) for v in row.values]
        self.conn.executemany("INSERT INTO vals(run, name, num, text) VALUES(?, ?, ?, ?)",
                              [(rid, i, v.num, v.text) for i, v in zip(ids, row.values)])
        self.conn.executemany("UPDATE names SET runs = runs + 1 WHERE id=?", [(i,) for i in ids])
        self.conn.executemany("INSERT INTO tags(run, tag) VALUES(?, ?)", [(rid, t) for t in row.tags])
        self.conn.executemany(
            "INSERT INTO stages(run, name, position, phase, cache_key, cache_hit, record, started_at, finished_at, "
            "image_digest) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(rid, s.name, s.position, s.phase, s.cache_key, s.cache_hit, s.record, s.started_at, s.finished_at,
              s.image_digest) for s in row.stage_rows])
        self.conn.executemany("INSERT INTO io(digest, run, stage, role, name) VALUES(?, ?, ?, ?, ?)",
                              [(i.digest, rid, i.stage, i.role, i.name) for i in row.io])
        return old is None

    def unverified(self, limit: int) -> list[str]:
        """Finished runs (newest first) that no verifier has answered for yet."""
        marks = ",".join("?" * len(phases.RUN_FINISHED))
        return [r[0] for r in self.conn.execute(
            f"SELECT run_id FROM runs WHERE verified IS NULL AND phase IN ({marks}) AND phase != 'Lost' "
            "ORDER BY created_at DESC LIMIT ?", (*phases.RUN_FINISHED, limit))]

    def set_verified(self, run_id: str, state: str) -> None:
        """A verifier's answer for a run ("ok" or "failed"), shown and filtered on as ``verified``."""
        with self.conn:
            self.conn.execute("UPDATE runs SET verified=? WHERE run_id=?", (state, run_id))

    def remove(self, run_id: str) -> None:
        old = self.conn.execute("SELECT id FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if old is not None:
            self._forget(int(old[0]))
            self.conn.execute("DELETE FROM runs WHERE id=?", (old[0],))

    def resolve(self, text: str) -> str:
        """A run id from what a person typed: the id, a unique prefix or a unique part of it
        (the 4 hex digits at the end of a local run id are usually enough)."""
        if self.conn.execute("SELECT 1 FROM runs WHERE run_id=?", (text,)).fetchone():
            return text
        safe = text.replace("\\", "").replace("%", "\\%").replace("_", "\\_")
        for pattern in (safe + "%", "%" + safe + "%"):
            found = [r[0] for r in self.conn.execute(
                "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 6",
                (pattern,))]
            if len(found) == 1:
                return str(found[0])
            if len(found) > 1:
                raise LookupError(f"{text!r} matches several runs ({', '.join(found[:5])}...): give more of the id")
        raise LookupError(f"no run {text!r} in {self.url} (list runs with `tycho runs`)")

    def add(self, summary: documents.RunSummary) -> None:
        """Record one summary now (``tycho run`` at its end); the next sync sees the file as known."""
        stamp = self._stamp_of(summary.run_id)
        with self.conn:
            self.put(summary, stamp)

    # ---- keeping in step --------------------------------------------------------------
    def sync(self, *, force_listing: bool = False) -> SyncReport:
        """Bring the index in step with ``runs/``. Without ``force_listing`` a local store
        fingerprints (stats) only new summaries and those of unfinished runs: a finished
        run's summary is not rewritten (``tycho index rebuild`` covers anything else)."""
        started = time.perf_counter()
        report = SyncReport()
        folder = self._folder_stamp()
        if force_listing or folder is None or folder != self._meta("runs_folder"):
            report.listed = True
            if self.local_dir is not None and not force_listing:
                changed, removed = self._local_changes()
            else:
                known = dict(self.conn.execute("SELECT run_id, stamp FROM runs").fetchall())
                listed = dict(_listing(self.store))
                changed = {r: s for r, s in listed.items() if known.get(r) != s}
                removed = set(known) - set(listed)
            with self.conn:
                # in id order (local ids sort by time): ties in a sort then put the newer first
                for n, (run_id, stamp) in enumerate(sorted(changed.items())):
                    summary = _read(self.store, run_id)
                    if summary is None:
                        report.unreadable.append(run_id)
                        continue
                    if self.put(summary, stamp):
                        report.added += 1
                    else:
                        report.updated += 1
                    if n % 2000 == 1999:
                        self.conn.commit()
                for run_id in removed:
                    self.remove(run_id)
                    report.removed += 1
                if folder is not None:
                    self._set_meta("runs_folder", folder)
        self._check_running()
        report.seconds = time.perf_counter() - started
        return report

    def _local_changes(self) -> tuple[dict[str, str], set[str]]:
        """(changed run -> fingerprint, removed runs) of a local store, statting only new
        summaries and those of unfinished runs: a finished run's summary is not rewritten
        (``tycho index sync`` and ``rebuild`` stat everything)."""
        assert self.local_dir is not None
        folder = self.local_dir / layout.RUNS
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        present = set(names)  # file names: set operations in C, no loop over 100,000 names in Python
        joined = self.conn.execute("SELECT group_concat(run_id || '.json', char(10)) FROM runs").fetchone()[0]
        indexed = set(joined.split("\n")) if joined else set()
        marks = ",".join("?" * len(phases.RUN_FINISHED))
        open_runs = dict(self.conn.execute(
            f"SELECT run_id, stamp FROM runs WHERE phase NOT IN ({marks}) OR phase = 'Lost'",
            phases.RUN_FINISHED).fetchall())
        changed: dict[str, str] = {}
        new = {n for n in present - indexed if n.endswith(".json")}  # not the .json.tmp-* of a writer
        for name in new | (present & {f"{r}.json" for r in open_runs}):
            try:
                st = os.stat(folder / name)
            except FileNotFoundError:
                continue
            stamp = f"{st.st_mtime_ns}:{st.st_size}"
            if open_runs.get(name[:-5]) != stamp:
                changed[name[:-5]] = stamp
        return changed, {n[:-5] for n in indexed - present}

    def _folder_stamp(self) -> str | None:
        """The mtime of a local ``runs/`` folder (changes whenever a summary is written: they
        are replaced by rename)."""
        if self.local_dir is None:
            return None
        try:
            return str(os.stat(self.local_dir / layout.RUNS).st_mtime_ns)
        except OSError:
            return "absent"

    def _stamp_of(self, run_id: str) -> str | None:
        if self.local_dir is None:
            return None  # on S3 the next listing fills it in
        try:
            st = os.stat(self.local_dir / layout.summary_rel(run_id))
        except OSError:
            return None
        return f"{st.st_mtime_ns}:{st.st_size}"

    def _check_running(self) -> None:
        """Runs still marked Running on this machine's executors whose process died are Lost."""
        rows = self.conn.execute("SELECT id, run_id, pipeline, created_at, heartbeat_at, executor, host, pid "
                                 "FROM runs WHERE phase='Running' AND executor != 'kubernetes'").fetchall()
        if not rows:
            return
        from tycho.provenance import documents, runs

        lost = []
        for rid, run_id, pipeline, created, beat, executor, host, pid in rows:
            shell = documents.RunSummary(run_id=run_id, pipeline=pipeline, created_at=created, heartbeat_at=beat,
                                         runner=documents.Runner(executor=executor, host=host, pid=pid))
            judged = runs.liveness(shell)
            if judged.phase != "Running":
                lost.append((judged.phase, judged.message, rid))
        if lost:
            with self.conn:
                self.conn.executemany("UPDATE runs SET phase=?, message=? WHERE id=?", lost)

    def rebuild(self) -> SyncReport:
        """Forget everything and read every summary again."""
        with self.conn:
            for table in ("vals", "tags", "stages", "io", "runs", "names", "meta"):
                self.conn.execute(f"DELETE FROM {table}")
            self._set_meta("schema", SCHEMA_VERSION)
            self._set_meta("store", self.url)
        self._names.clear()
        report = self.sync(force_listing=True)
        self.conn.execute("ANALYZE")
        return report


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.create_function("REGEXP", 2, _regexp, deterministic=True)
    return conn


def _read(store: store_mod.Store, run_id: str) -> documents.RunSummary | None:
    import pydantic

    from tycho.provenance import documents

    try:
        return documents.RunSummary.model_validate(store.read_json(layout.summary_rel(run_id)))
    except (OSError, ValueError, pydantic.ValidationError):
        return None


def _listing(store: store_mod.Store) -> Iterator[tuple[str, str]]:
    """(run id, fingerprint) of every summary in the store: size and mtime on a disk, the
    ETag on S3."""
    if store.local:
        try:
            entries: Iterable[os.DirEntry[str]] = os.scandir(store.local_path(layout.RUNS))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.endswith(".json") and ".tmp-" not in entry.name:
                st = entry.stat()
                yield entry.name[:-5], f"{st.st_mtime_ns}:{st.st_size}"
        return
    folder = f"{store.root}/{layout.RUNS}"
    with contextlib.suppress(FileNotFoundError):
        for info in store.fs.ls(folder, detail=True):
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".json"):
                yield name[:-5], str(info.get("ETag") or info.get("LastModified") or info.get("size"))


def open_synced(store_url: str, path: str | None = None) -> Index:
    """The index of a store, brought up to date."""
    index = Index(store_url, path)
    index.sync()
    return index
