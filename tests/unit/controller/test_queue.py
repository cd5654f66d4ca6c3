"""Per-pipeline serialisation: bursts of triggers collapse, failures are retried, nothing
runs before the caches hold their first listing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tycho.controller import events, queue as workqueue, reconciler


class _Rec:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def reconcile(self, world: reconciler.World) -> reconciler.Result:
        name = world.pipeline["metadata"]["name"] if world.pipeline else "?"
        with self.lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            call = self.calls
        time.sleep(0.05)
        with self.lock:
            self.active -= 1
        if call <= self.fail_first:
            raise RuntimeError("store unreachable")
        return reconciler.Result([events.Event("Normal", "X", str(call))], {"metadata": {"name": name}})


def _queue(rec: _Rec, posted: list[Any]) -> workqueue.WorkQueue:
    def world(ns: str, name: str) -> reconciler.World:
        return reconciler.World(pipeline={"metadata": {"name": name, "namespace": ns}}, jobs={})

    return workqueue.WorkQueue(rec.reconcile, world, post=lambda ref, ev: posted.append(ev.message))


def test_a_burst_of_triggers_runs_one_pass_at_a_time_and_at_most_one_extra() -> None:
    rec, posted = _Rec(), list[Any]()

    async def main() -> None:
        q = _queue(rec, posted)
        await asyncio.gather(*(q.trigger("ns", "p") for _ in range(10)))

    asyncio.run(main())
    assert rec.max_active == 1 and rec.calls == 2 and posted == ["1", "2"]


def test_a_failed_pass_is_retried_by_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, posted = _Rec(fail_first=1), list[Any]()
    monkeypatch.setattr(workqueue, "MAX_BACKOFF", 0.1)

    async def main() -> None:
        q = _queue(rec, posted)
        await q.trigger("ns", "p")
        await asyncio.sleep(0.4)

    asyncio.run(main())
    assert rec.calls == 2 and posted == ["2"]


def test_no_pass_runs_before_the_caches_are_ready_and_triggers_meanwhile_make_one() -> None:
    rec, posted = _Rec(), []

    async def main() -> None:
        ready = asyncio.Event()
        q = workqueue.WorkQueue(rec.reconcile, lambda ns, name: reconciler.World(
            pipeline={"metadata": {"name": name}}, jobs={}), post=lambda ref, ev: posted.append(ev.message),
            ready=ready)
        tasks = [asyncio.create_task(q.trigger("ns", "p")) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert rec.calls == 0
        ready.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert rec.calls == 1
