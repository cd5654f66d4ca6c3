"""A watch-fed cache of stage Jobs (an informer): one LIST in pages, then a WATCH from the
list's resourceVersion, resumed where it stopped, and listed again when the API server no
longer has that version (410 Gone).

Each Job is reduced to what the operator reads of it (``observe.essentials``) as its event
is decoded, and the event is dropped. Why not a kopf index, as for pipelines: kopf handles
each object in a task of its own, and at start-up every task waits until all objects are
indexed, each arrival waking every waiting task. With 3,500 Jobs a restarted operator
spent about 110 s and 550 MiB in that wait before its first pass.

``JobCache`` is pure and thread-safe; ``JobInformer`` is its I/O, in a thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tycho import backoff
from tycho.kube import client, naming, observe

log = logging.getLogger("tycho.operator")
Key = tuple[str, str]
"""(namespace, pipeline): whose Jobs changed."""
PAGE = 500
WATCH_SECONDS = 300
MAX_BACKOFF = 30.0


class JobCache:
    """Stage Jobs by pipeline, as the watch shows them; says which pipeline to reconcile.

    A Job event needs a reconcile only when it changes what the engine decides on
    (``observe.fingerprint``: phase, attempts, deletion). A Job first seen running needs
    none either: the pass that created it counted it as running already (``observe.CREATED``),
    and at start-up every pipeline gets a pass anyway."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[Key, dict[str, Mapping[str, Any]]] = {}
        self._seen: dict[str, tuple[Key, str, tuple[object, ...]]] = {}  # uid -> (pipeline, name, fingerprint)

    def jobs(self, ns: str, pipeline: str) -> dict[str, Mapping[str, Any]]:
        with self._lock:
            return dict(self._jobs.get((ns, pipeline), {}))

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def apply(self, kind: str, job: Mapping[str, Any]) -> Key | None:
        """Fold one watch event in (ADDED, MODIFIED, DELETED); the pipeline to reconcile, if any."""
        entry = observe.essentials(job)
        found = _identity(entry)
        if found is None:
            return None
        uid, key = found
        with self._lock:
            if kind == "DELETED":
                self._forget(uid)
                return key
            return self._put(uid, key, entry)

    def replace(self, entries: Iterable[dict[str, Any]], namespace: str | None) -> list[Key]:
        """A full listing of ``namespace`` (None: all), as ``observe.essentials`` of each Job:
        Jobs not in it are gone. The pipelines whose Jobs changed since the cache last saw them."""
        known = [(found, entry) for entry in entries if (found := _identity(entry)) is not None]
        with self._lock:
            listed = {uid for (uid, _), _ in known}
            gone = [(uid, where) for uid, (where, _, _) in self._seen.items()
                    if (namespace is None or where[0] == namespace) and uid not in listed]
            for uid, _ in gone:
                self._forget(uid)
            changed = [where for _, where in gone]
            changed += [key for (uid, where), entry in known if (key := self._put(uid, where, entry)) is not None]
        return sorted(set(changed))

    def _put(self, uid: str, key: Key, entry: dict[str, Any]) -> Key | None:
        name, fingerprint = str(entry["metadata"].get("name", "")), observe.fingerprint(entry)
        before = self._seen.get(uid)
        self._seen[uid] = (key, name, fingerprint)
        self._jobs.setdefault(key, {})[name] = entry
        return None if (before[2] if before is not None else observe.CREATED) == fingerprint else key

    def _forget(self, uid: str) -> None:
        found = self._seen.pop(uid, None)
        if found is None:
            return
        key, name, _ = found
        jobs = self._jobs.get(key, {})
        jobs.pop(name, None)
        if not jobs:
            self._jobs.pop(key, None)


def _identity(entry: Mapping[str, Any]) -> tuple[str, Key] | None:
    """A Job's uid and its pipeline's key (None: not a stage Job)."""
    meta = entry["metadata"]
    uid, pipeline = str(meta.get("uid", "")), meta["labels"].get(naming.LABEL_PIPELINE)
    return (uid, (str(meta.get("namespace", "")), pipeline)) if uid and pipeline is not None else None


class JobInformer:
    """Keeps a ``JobCache`` filled with the stage Jobs of one namespace (None: all), in a
    daemon thread. ``changed(key)`` is called (from that thread) for each pipeline to
    reconcile; ``synced`` is set once the first listing is in the cache."""

    def __init__(self, kube: client.Kube, namespace: str | None, cache: JobCache,
                 changed: Callable[[Key], None], synced: Callable[[], None]) -> None:
        self.kube, self.namespace, self.cache, self.changed, self.on_synced = kube, namespace, cache, changed, synced
        self.stopping = threading.Event()
        self.version = ""
        """The last resourceVersion seen (event or bookmark): a broken watch resumes from it."""
        self._thread = threading.Thread(target=self._run, name=f"jobs-{namespace or 'all'}", daemon=True)
        self.selector = naming.LABEL_PIPELINE

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _tell(self, key: Key) -> None:
        if not self.stopping.is_set():  # after stop, the loop the callback posts to may be gone
            self.changed(key)

    def _list(self) -> None:
        """List every stage Job in pages; the listing's resourceVersion becomes ``version``."""
        jobs: list[dict[str, Any]] = []
        token, version = "", ""
        while True:
            page = self.kube.list_jobs(self.namespace, self.selector, limit=PAGE, token=token)
            jobs += [observe.essentials(j) for j in page.get("items", [])]
            version = str(page.get("metadata", {}).get("resourceVersion", version))
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                break
        for key in self.cache.replace(jobs, self.namespace):
            self._tell(key)
        self.version = version

    def _run(self) -> None:
        failures, first = 0, True
        while not self.stopping.is_set():
            try:
                if not self.version:
                    self._list()
                    if first and not self.stopping.is_set():
                        first = False
                        self.on_synced()
                self._watch()
                failures = 0
            except Exception as err:  # noqa: BLE001 - the informer outlives any one failure of the API server
                if isinstance(err, client.ApiError) and err.status == 410:
                    self.version = ""  # too old: list again
                    continue
                failures += 1
                delay = backoff.delay(failures, base=1.0, cap=MAX_BACKOFF)
                log.warning("watching Jobs%s failed (%s: %s); again in %.0fs",
                            f" in {self.namespace}" if self.namespace else "", type(err).__name__, err, delay)
                self.stopping.wait(delay)

    def _watch(self) -> None:
        """Follow the watch from ``version`` until the server ends it, moving ``version`` with
        every event and bookmark (so a watch that breaks resumes where it broke)."""
        for event in self.kube.watch_jobs(self.namespace, self.selector, self.version, WATCH_SECONDS):
            if self.stopping.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    self.version = ""
                    return
                raise client.ApiError(int(obj.get("code") or 500), str(obj.get("message", obj)))
            if kind in ("ADDED", "MODIFIED", "DELETED") and (key := self.cache.apply(kind, obj)) is not None:
                self._tell(key)
            self.version = str(obj.get("metadata", {}).get("resourceVersion") or self.version)
