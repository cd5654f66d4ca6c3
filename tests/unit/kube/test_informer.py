"""The Job informer: a cache of Jobs' essentials by pipeline, fed by a paged LIST and a
WATCH, that says which pipeline to reconcile only when a Job changed what the engine reads.

The API server here is a stand-in (``_Api``) that serves pages and watch streams from
lists: the informer's requests against a real API server run in the cluster tests, where
the operator reads every Job through it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.kube import kubefakes as fk
from tycho.kube import client, informer, jobs, naming, observe
from tycho.settings import Settings


def _job(stage: str, phase: str = "Running", uid: str | None = None, **kw: Any) -> dict[str, Any]:
    manifest = jobs.build_job(pipeline=fk.toy(), start=fk.start(fk.toy(), stage, stage[0] * 64), settings=Settings())
    job = fk.finish(manifest, phase, **kw)
    job["metadata"]["uid"] = uid or f"uid-{stage}"
    return job


KEY = ("ns1", "toy")


def test_only_a_change_the_engine_reads_asks_for_a_reconcile() -> None:
    cache = informer.JobCache()
    running = _job("generate")
    assert running["metadata"]["namespace"] == "ns1"
    assert cache.apply("ADDED", running) is None  # first seen running: the pass that created it knows
    assert list(cache.jobs(*KEY)) == [running["metadata"]["name"]]
    ready = _job("generate")
    ready["status"]["ready"] = 1
    assert cache.apply("MODIFIED", ready) is None  # a pod became ready: nothing the engine reads
    assert cache.apply("MODIFIED", _job("generate", "Succeeded")) == KEY
    assert cache.apply("MODIFIED", _job("generate", "Succeeded")) is None
    assert cache.apply("DELETED", _job("generate", "Succeeded")) == KEY
    assert cache.jobs(*KEY) == {} and len(cache) == 0


def test_a_job_first_seen_finished_or_retrying_asks_for_a_reconcile() -> None:
    cache = informer.JobCache()
    assert cache.apply("ADDED", _job("generate", "Succeeded")) == KEY
    assert cache.apply("ADDED", _job("report", "Running", failed=1)) == KEY  # second attempt


def test_what_the_cache_holds_reads_as_the_job_does() -> None:
    cache = informer.JobCache()
    job = _job("report", "Failed", failed=2)
    cache.apply("ADDED", job)
    (entry,) = cache.jobs(*KEY).values()
    assert observe.job_state(entry) == observe.job_state(job) and naming.owned_by(entry, "uid-1")
    assert naming.ANNOTATION_INVOCATION not in str(entry)


def test_a_new_listing_drops_what_went_missing_and_names_what_changed() -> None:
    cache = informer.JobCache()
    assert cache.replace([observe.essentials(_job("generate")), observe.essentials(_job("report"))], "ns1") == []
    other = _job("generate", uid="uid-other")
    other["metadata"]["namespace"] = "ns2"
    cache.apply("ADDED", other)
    # relisted after a gap: generate finished meanwhile, report was deleted
    assert cache.replace([observe.essentials(_job("generate", "Succeeded"))], "ns1") == [KEY]
    assert list(cache.jobs(*KEY)) == [_job("generate")["metadata"]["name"]]
    assert cache.jobs("ns2", "toy") != {}  # another namespace's listing is not this one's business
    assert cache.replace([], "ns1") == [KEY] and cache.jobs(*KEY) == {}


class _Api:
    """Pages of a LIST, then watch streams, one per WATCH request, from prepared lists."""

    def __init__(self, items: list[dict[str, Any]], streams: list[list[Any] | client.ApiError]) -> None:
        self.items, self.streams = items, streams
        self.requests: list[tuple[str, str]] = []
        self.done = threading.Event()

    def list_jobs(self, ns: str | None, selector: str, limit: int, token: str = "") -> dict[str, Any]:
        start = int(token or 0)
        self.requests.append(("LIST", token))
        rest = start + limit < len(self.items)
        return {"metadata": {"resourceVersion": "100", "continue": str(start + limit) if rest else ""},
                "items": self.items[start:start + limit]}

    def watch_jobs(self, ns: str | None, selector: str, version: str, seconds: int) -> Iterator[dict[str, Any]]:
        self.requests.append(("WATCH", version))
        if not self.streams:
            self.done.set()
            threading.Event().wait(5)
            return
        stream = self.streams.pop(0)
        if isinstance(stream, client.ApiError):
            raise stream
        for event in stream:
            if isinstance(event, Exception):
                raise event  # the connection broke mid-stream
            yield event


def _run(api: _Api, page: int = 2) -> tuple[informer.JobCache, list[tuple[str, str]], list[bool]]:
    cache, changed, synced = informer.JobCache(), list[tuple[str, str]](), list[bool]()
    inf = informer.JobInformer(api, "ns1", cache, changed.append, lambda: synced.append(True))  # type: ignore[arg-type]
    old, informer.PAGE = informer.PAGE, page
    try:
        inf.start()
        assert api.done.wait(10)
    finally:
        inf.stop()
        informer.PAGE = old
    return cache, changed, synced


def _event(kind: str, job: dict[str, Any], version: str) -> dict[str, Any]:
    job["metadata"]["resourceVersion"] = version
    return {"type": kind, "object": job}


def test_the_informer_lists_in_pages_then_follows_the_watch_from_where_it_stopped() -> None:
    listed = [_job("generate", uid=f"u{i}") for i in range(3)]
    for i, job in enumerate(listed):
        job["metadata"]["name"] = f"toy-generate-{i}"
    api = _Api(listed, [[_event("MODIFIED", _job("generate", "Succeeded", uid="u0"), "101"),
                         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "105"}}}],
                        [_event("DELETED", _job("generate", "Succeeded", uid="u0"), "106")]])
    cache, changed, synced = _run(api)
    assert api.requests == [("LIST", ""), ("LIST", "2"), ("WATCH", "100"), ("WATCH", "105"), ("WATCH", "106")]
    assert synced == [True] and changed == [KEY, KEY] and len(cache) == 2


def test_a_version_the_server_no_longer_has_means_listing_again() -> None:
    api = _Api([_job("generate")], [
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}],
        client.ApiError(410, '{"message": "too old"}')])
    api_items_after = [_job("generate", "Succeeded")]

    def relist(ns: str | None, selector: str, limit: int, token: str = "") -> dict[str, Any]:
        api.requests.append(("LIST", token))
        return {"metadata": {"resourceVersion": "200", "continue": ""},
                "items": [_job("generate")] if len(api.requests) == 1 else api_items_after}

    api.list_jobs = relist  # type: ignore[method-assign]
    cache, changed, synced = _run(api)
    assert [r[0] for r in api.requests] == ["LIST", "WATCH", "LIST", "WATCH", "LIST", "WATCH"]
    assert synced == [True]  # once, for the first listing
    assert changed == [KEY]  # the second listing found generate finished; the third, nothing new
    (entry,) = cache.jobs(*KEY).values()
    assert observe.job_state(entry).phase == "Succeeded"


def test_a_failing_api_server_is_retried_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    api = _Api([], [client.ApiError(500, '{"message": "etcd unavailable"}'),
                    [_event("ADDED", _job("generate", "Succeeded"), "101")]])
    monkeypatch.setattr(informer, "MAX_BACKOFF", 0.05)  # retry at once
    cache, changed, _ = _run(api)
    assert changed == [KEY] and len(cache) == 1


def test_a_watch_that_breaks_resumes_after_the_last_event_it_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    api = _Api([_job("generate")], [[_event("MODIFIED", _job("generate", "Succeeded"), "150"), ConnectionResetError()],
                                    [_event("DELETED", _job("generate", "Succeeded"), "151")]])
    monkeypatch.setattr(informer, "MAX_BACKOFF", 0.05)  # retry at once
    cache, changed, _ = _run(api)
    assert api.requests == [("LIST", ""), ("WATCH", "100"), ("WATCH", "150"), ("WATCH", "151")]
    assert changed == [KEY, KEY] and len(cache) == 0
