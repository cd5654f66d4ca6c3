"""The operator's one work queue: every reconcile goes through it, and it is the one place
that retries.

Watch events arrive in bursts (a Job's status changes several times per attempt, and
every Job of a pipeline reports separately). A pipeline is reconciled by one worker at
a time; triggers that arrive meanwhile collapse into one more pass. A failed pass is
retried with exponential backoff; a pass may ask to be run again after a delay. kopf's
handlers and the Job informer only trigger (``tycho.controller.handlers``): they never
reconcile or retry.

Runs in kopf's event loop. The world a pass sees is read from the watch-fed caches on the
loop (``world``), then the blocking reconcile runs in a thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable

from tycho import backoff
from tycho.controller import events as events_mod, metrics, reconciler

log = logging.getLogger("tycho.operator")
Key = tuple[str, str]
Post = Callable[[dict[str, object], events_mod.Event], None]
WorldOf = Callable[[str, str], reconciler.World]
Reconcile = Callable[[reconciler.World], reconciler.Result]
MAX_BACKOFF = 60.0
WORKERS = 32
"""Passes that may run at once. A pass spends most of its time waiting on the API server and
the store, not computing, so many run side by side; a burst (hundreds of pipelines applied
together, many Jobs finishing together) would otherwise wait in line behind a few."""


@dataclasses.dataclass
class _Slot:
    running: bool = False
    dirty: bool = False
    failures: int = 0
    timer: asyncio.TimerHandle | None = None


class WorkQueue:
    def __init__(self, reconcile: Reconcile, world: WorldOf, post: Post, workers: int = WORKERS,
                 ready: asyncio.Event | None = None) -> None:
        """``ready``: set once the world can be read (the Job cache has its first listing); no
        pass runs before, so a restarted operator never decides on a partial view."""
        self.reconcile, self.world, self.post = reconcile, world, post
        self.ready = ready
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._slots: dict[Key, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def trigger(self, ns: str, name: str) -> None:
        """Reconcile now, or make the running pass go round once more."""
        slot = self._slots.setdefault((ns, name), _Slot())
        slot.dirty = True
        if slot.running:
            return
        slot.running = True
        loop = asyncio.get_running_loop()
        try:
            if self.ready is not None:
                await self.ready.wait()
            while slot.dirty:
                slot.dirty = False
                try:
                    result = await loop.run_in_executor(self._pool, self.reconcile, self.world(ns, name))
                except Exception as err:  # noqa: BLE001 - any failure is retried here, and only here
                    slot.failures += 1
                    metrics.RECONCILE_ERRORS.inc()
                    delay = backoff.delay(slot.failures, base=2.0, cap=MAX_BACKOFF)
                    log.warning("reconcile of %s/%s failed (%s: %s); retrying in %.0fs", ns, name,
                                type(err).__name__, err, delay)
                    self.requeue(ns, name, delay)
                    return
                slot.failures = 0
                if result.ref is not None:
                    for event in result.events:
                        log.info("%s/%s %s: %s", ns, name, event.reason, event.message)
                        self.post(result.ref, event)
                if result.requeue_after is not None:
                    self.requeue(ns, name, result.requeue_after)
        finally:
            slot.running = False

    def requeue(self, ns: str, name: str, delay: float) -> None:
        slot = self._slots.setdefault((ns, name), _Slot())
        if slot.timer is not None:
            slot.timer.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            slot.timer = None
            task = loop.create_task(self.trigger(ns, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        slot.timer = loop.call_later(delay, fire)

    def forget(self, ns: str, name: str) -> None:
        slot = self._slots.pop((ns, name), None)
        if slot is not None and slot.timer is not None:
            slot.timer.cancel()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
