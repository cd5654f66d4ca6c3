"""What the board holds while it serves: the store, its index kept in step by a background
thread, read connections per request thread, and a cache of parsed run summaries.

The index is written by one thread only (``Syncer``); requests read through their own
connection (SQLite WAL: readers never wait for the writer), so a long sync of an object
store never blocks a page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from tycho.board import verification
from tycho.index import db
from tycho.provenance import documents, runs, store as store_mod

CACHED_SUMMARIES = 512
VERIFY_PER_SYNC = 20
"""Finished runs the sync thread verifies per round, newest first, so new runs get their
answer within a round or two while an old store is worked through in the background."""


class Board:
    def __init__(self, store_url: str, *, logs: Path | None = None, index_path: str | None = None,
                 verifier: verification.Verifier | None = None, sync_seconds: float | None = None) -> None:
        self.store = store_mod.Store(store_url)
        self.logs = logs
        self.verifier: verification.Verifier = verifier or verification.StoreVerifier()
        self._verified: OrderedDict[str, tuple[str | None, verification.Verification]] = OrderedDict()
        self.writer = db.Index(self.store, index_path)
        self.index_path = self.writer.path
        self.writer.sync()
        self.sync_seconds = sync_seconds if sync_seconds is not None else (1.0 if self.store.local else 5.0)
        self._local = threading.local()
        self._summaries: OrderedDict[str, tuple[str | None, documents.RunSummary]] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sync_loop, name="tycho-board-sync", daemon=True)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.writer.close()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_seconds):
            try:
                self.writer.sync()
                self.verify_some()
            except Exception as err:  # noqa: BLE001 - keep serving what the index has; say why once per failure
                print(f"tycho board: index sync failed: {err}", flush=True)

    def verify_some(self, limit: int = VERIFY_PER_SYNC) -> int:
        """Verify up to ``limit`` finished runs the index has no answer for (on the sync
        thread: the index's one writer). Returns how many were checked."""
        done = 0
        for run_id in self.writer.unverified(limit):
            try:
                summary = runs.load(self.store, run_id)
            except (FileNotFoundError, ValueError):
                self.writer.set_verified(run_id, "failed")  # a summary that no longer loads is an answer too
                continue
            self.writer.set_verified(run_id, self.verification(run_id, summary).state)
            done += 1
        return done

    # ---- reading ------------------------------------------------------------------------
    @property
    def index(self) -> db.Index:
        """This thread's read connection to the index."""
        found: db.Index | None = getattr(self._local, "index", None)
        if found is None:
            found = db.Index.reader(self.store, self.index_path)
            self._local.index = found
        return found

    def resolve(self, text: str) -> str:
        return self.index.resolve(text)

    def verification(self, run_id: str, summary: documents.RunSummary) -> verification.Verification:
        """The verifier's answer for this version of a run's summary (checked once per version)."""
        version = summary.finished_at or summary.heartbeat_at
        with self._lock:
            hit = self._verified.get(run_id)
            if hit is not None and hit[0] == version and hit[1].state != "unchecked":
                return hit[1]
        answer = self.verifier.check(self.store, summary)
        with self._lock:
            self._verified[run_id] = (version, answer)
            while len(self._verified) > CACHED_SUMMARIES:
                self._verified.popitem(last=False)
        return answer

    def summary(self, run_id: str) -> documents.RunSummary:
        """A run's summary, parsed once per version of its file (the index knows the version);
        a running run is read afresh each time (its page follows it live)."""
        row = self.index.conn.execute("SELECT stamp FROM runs WHERE run_id=?", (run_id,)).fetchone()
        stamp = row[0] if row else None
        with self._lock:
            hit = self._summaries.get(run_id)
            if hit is not None and stamp is not None and hit[0] == stamp and hit[1].phase != "Running":
                self._summaries.move_to_end(run_id)
                return hit[1]
        summary = runs.load(self.store, run_id)
        with self._lock:
            self._summaries[run_id] = (stamp, summary)
            while len(self._summaries) > CACHED_SUMMARIES:
                self._summaries.popitem(last=False)
        return summary
