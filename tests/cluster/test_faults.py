"""Faults on the real control plane: the operator SIGKILLed at random moments while 50
pipelines run, and the store (MinIO) stopped for 30 s mid-run. Pods are run by the fast
kubelet (tests/cluster/fastlet.py). Slow (a few minutes together) but part of `make test`."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fastlet import FastKubelet
from tests.cluster.space import Space
from tests.support.cluster import STATE, read_env_file
from tests.support.waiting import wait_for
from tycho.provenance import audit, layout, store as store_mod
from tycho.reports import verify

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
PIPELINES = 50
KILL_SECONDS = float(os.environ.get("TYCHO_FAULT_KILL_SECONDS", "150"))


def _pipelines(space: Space, count: int, retries: int = 0) -> list[str]:
    names = []
    for i in range(count):
        doc = space.toy(f"p{i:02d}")
        doc["spec"]["stages"][0]["params"]["count"] = i + 1  # its own cache keys: every stage executes
        doc["spec"]["maxParallel"] = 3
        for stage in doc["spec"]["stages"]:
            stage["retries"] = {"limit": retries, "backoffSeconds": 0}
        space.apply(doc)
        names.append(doc["metadata"]["name"])
    return names


def _phases(space: Space) -> dict[str, str]:
    doc = space.kube._call("GET", space.kube.pipelines(space.ns))
    return {p["metadata"]["name"]: (p.get("status") or {}).get("phase", "") for p in doc["items"]}


def _trusted(space: Space) -> audit.Keys:
    from tycho.provenance import signing

    pem = space.kube.secret(space.ns, "tycho-signing")["signing.key"]
    path = space.tmp / "signing-check.key"
    path.write_text(pem)
    return {signing.keyid(signing.load_private(path).public_key()): signing.load_private(path).public_key()}


def _check_store(space: Space, names: list[str]) -> None:
    """One run per pipeline, one record per stage of it, everything verifies."""
    store = store_mod.Store(space.store)
    runs_by_pipeline = {n: store.list(layout.pipeline_runs_dir(n)) for n in names}
    assert all(len(v) == 1 for v in runs_by_pipeline.values()), {
        k: v for k, v in runs_by_pipeline.items() if len(v) != 1}
    records = {run: store.list(f"{layout.RECORDS}/{run}") for run in store.list(layout.RECORDS)}
    assert len(records) == len(names) and all(v == ["generate.json", "report.json", "total.json"]
                                              for v in records.values()), records
    report = verify.verify(store, None, _trusted(space))
    assert report.problems == [], report.problems[:10]


def _reconciling(space: Space) -> bool:
    """The operator has listed everything and started reconciling (kopf serves /healthz
    while it is still filling its indexes; a kill before this point only repeats the start)."""
    try:
        text = space.operator.metrics()
    except OSError:
        return False
    counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("tycho_reconcile_duration_seconds_count")]
    return bool(counts and counts[0] > 0)


def test_the_operator_killed_at_random_moments_loses_and_duplicates_nothing(space: Space) -> None:
    """Each operator life is ended by SIGKILL at a random moment 0.5-3 s after it starts
    reconciling, for as long as KILL_SECONDS allows; then it finishes the pipelines."""
    rng = random.Random(int(os.environ.get("TYCHO_FAULT_SEED", "7")))
    names = _pipelines(space, PIPELINES)
    jobs_seen: dict[str, set[str]] = collections.defaultdict(set)
    kills = 0
    killing_until = time.monotonic() + KILL_SECONDS
    deadline = time.monotonic() + 900
    with FastKubelet(space) as kubelet:
        while time.monotonic() < deadline:
            for job in space.jobs():
                jobs_seen[job["metadata"]["name"]].add(job["metadata"]["uid"])
            phases = _phases(space)
            if all(phases.get(n) == "Succeeded" for n in names):
                break
            assert not [n for n, p in phases.items() if p in ("Failed", "Invalid")], phases
            if time.monotonic() > killing_until:
                time.sleep(1)
                continue
            wait_for(lambda: _reconciling(space), 60, "the operator to start reconciling", interval=0.1)
            time.sleep(rng.uniform(0.5, 3.0))
            space.operator.kill(signal.SIGKILL)
            kills += 1
            space.operator.start()
        phases = _phases(space)
        assert all(phases.get(n) == "Succeeded" for n in names), collections.Counter(phases.values())
        for job in space.jobs():
            jobs_seen[job["metadata"]["name"]].add(job["metadata"]["uid"])
        assert kubelet.failures == 0 and kubelet.pods_run == 3 * PIPELINES, (kubelet.failures, kubelet.pods_run,
                                                                             kubelet.errors[-5:])
    assert kills >= 5
    per_stage = collections.Counter(j.rsplit("-", 2)[0] for j in jobs_seen)
    assert len(jobs_seen) == 3 * PIPELINES and all(len(uids) == 1 for uids in jobs_seen.values()), per_stage
    assert len(space.jobs()) == 3 * PIPELINES
    _check_store(space, names)


def _minio() -> tuple[int, list[str], dict[str, str], str]:
    pid = int((STATE / "pids" / "minio.pid").read_text().split()[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
               if "=" in item)
    return pid, argv, env, os.readlink(f"/proc/{pid}/cwd")


@contextlib.contextmanager
def _outage(seconds: float) -> Iterator[None]:
    """MinIO SIGKILLed for ``seconds`` (the body runs while it is down), then started again
    with its own command line, whatever happens: the tests after this one need the store."""
    pid, argv, env, cwd = _minio()
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or None, 10, "MinIO to stop")
        down = time.monotonic()
        yield
        time.sleep(max(0.0, seconds - (time.monotonic() - down)))  # the outage lasts this long
    finally:
        with open(STATE / "logs" / "minio.log", "ab") as log:
            restarted = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        (STATE / "pids" / "minio.pid").write_text(f"{restarted.pid}\n")
        wait_for(_minio_answers, 30, "MinIO to serve again")


def _minio_answers() -> bool:
    endpoint = read_env_file(STATE / "s3.env")["AWS_ENDPOINT_URL"]
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.mark.alone
def test_a_store_outage_mid_run_is_retried_and_leaves_no_half_written_object(space: Space) -> None:
    names = _pipelines(space, 6, retries=6)
    with FastKubelet(space) as kubelet:
        kubelet.paused.set()  # the runs have started; their first pods run while the store is down
        wait_for(lambda: kubelet.waiting() >= len(names) or None, 120, "every pipeline's first pod")
        with _outage(seconds=30):
            kubelet.paused.clear()

        def finished() -> dict[str, str] | None:
            now = _phases(space)
            return now if all(now.get(n) == "Succeeded" for n in names) else None

        try:
            phases = wait_for(finished, 400, "every pipeline to finish after the outage")
        except AssertionError as late:
            raise AssertionError(
                f"{late}; kubelet: ran {kubelet.pods_run} pods, errors {kubelet.errors[-5:]}") from None
        assert set(phases.values()) == {"Succeeded"}
        assert kubelet.failures >= 1  # stages did fail during the outage ...
    stages: dict[str, Any] = {}
    for name in names:
        for stage in space.status(name)["stages"]:
            stages[f"{name}/{stage['name']}"] = stage
    assert any(s["attempts"] > 1 for s in stages.values())  # ... and were retried as new pods
    _check_store(space, names)
    store = store_mod.Store(space.store)
    objects = store.fs.find(f"{store.root}/{layout.OBJECTS}")
    assert objects, "the runs stored no object"
    broken = [p for p in objects if hashlib.sha256(store.fs.cat_file(p)).hexdigest() != p.rsplit("/", 1)[1]]
    assert broken == [], f"objects whose bytes are not their name (half written?): {broken[:5]}"
