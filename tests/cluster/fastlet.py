"""A fast kubelet for the fault tests: runs stage pods in a pool of long-lived worker
processes (Tycho imported once), each container's phase with exactly that container's
environment, in order (``tests.support.kubelet.run_phases``), the way ``Space.run_stage``
does with one process per container.

Used where many pods must run quickly (50 pipelines while the operator is being killed,
a store outage) and process isolation is not what is tested (``test_secrets`` tests it).
The user's code still runs as its own subprocess, through the stage wrapper.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import subprocess
import threading
import time
from typing import Any

from tests.cluster.space import Space
from tests.support import kubelet
from tycho.kube import naming

POD_SECONDS = 90.0
"""A pod that has not ended by then is killed (its worker with it) and reported failed:
what a node does with a stuck container past its deadline (the Job retries it)."""


class FastKubelet:
    """Watches the space's pods; runs each Running pod once; reports it as a kubelet would."""

    def __init__(self, space: Space, workers: int = 2) -> None:
        self.space = space
        self.workers = workers
        self.pool = self._pool()
        self.handled: set[str] = set()
        self.pods_run = 0
        self.failures = 0
        self.stop = threading.Event()
        self.paused = threading.Event()
        """While set, no new pod is started (pods wait, Running, as on a busy node)."""
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def waiting(self) -> int:
        """Running pods not started yet (while paused)."""
        return sum(p["metadata"]["uid"] not in self.handled and p.get("status", {}).get("phase") == "Running"
                   for p in self.space.kube.pods(self.space.ns, "tycho.dev/pipeline"))

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # Fresh interpreters (spawn), not forks of this process and its store clients.
        return concurrent.futures.ProcessPoolExecutor(max_workers=self.workers,
                                                      mp_context=multiprocessing.get_context("spawn"))

    def _restart_pool(self) -> None:
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._pool()

    def __enter__(self) -> FastKubelet:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.pool.shutdown(cancel_futures=True)

    def _containers(self, pod: dict[str, Any]) -> list[kubelet.Container]:
        found = []
        for container in kubelet.containers(pod):
            env = kubelet.container_env(self.space.kube, self.space.ns, pod, container)
            if "TYCHO_SIGNING_KEY" in env:
                secret = next(v["secret"]["secretName"] for v in pod["spec"]["volumes"] if v["name"] == "signing")
                env["TYCHO_SIGNING_KEY_PEM"] = self.space.kube.secret(self.space.ns, secret)["signing.key"]
            env["PATH"] = os.environ["PATH"]
            env["TYCHO_INVOCATION"] = pod["metadata"]["annotations"][naming.ANNOTATION_INVOCATION]  # its downward file
            found.append((container["name"], kubelet.phase(container), env))
        return found

    def _loop(self) -> None:
        pending: dict[concurrent.futures.Future[kubelet.Ended], dict[str, Any]] = {}
        started: dict[concurrent.futures.Future[kubelet.Ended], float] = {}
        while not self.stop.is_set():
            try:
                for pod in self.space.kube.pods(self.space.ns, "tycho.dev/pipeline"):
                    uid = pod["metadata"]["uid"]
                    if uid in self.handled or pod.get("status", {}).get("phase") != "Running" \
                            or pod["metadata"].get("deletionTimestamp") or self.paused.is_set():
                        continue
                    future = self.pool.submit(kubelet.run_phases, self._containers(pod), str(self.space.code_dir))
                    self.handled.add(uid)
                    pending[future], started[future] = pod, time.monotonic()
                done, _ = concurrent.futures.wait(list(pending), timeout=0.3,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                stuck = [f for f in pending if f not in done and time.monotonic() - started[f] > POD_SECONDS]
                if stuck:
                    self._restart_pool()
                    done = set(pending)  # every pod of the killed workers ends as failed
                for future in done:
                    pod = pending.pop(future)
                    started.pop(future, None)
                    try:
                        results = future.result(timeout=0)
                    except Exception as err:  # noqa: BLE001 - killed past its deadline, or its worker was
                        results = [(pod["spec"]["initContainers"][0]["name"], 137, f"killed: {err!r}")]
                    self.pods_run += 1
                    self.failures += any(code for _, code, _ in results)
                    ran = [({"name": n}, subprocess.CompletedProcess([], code, text, "")) for n, code, text in results]
                    for _ in range(5):
                        try:
                            self.space.kube.finish_containers(pod, ran, f"docker.io/tycho/stage-cpu@sha256:{'ab' * 32}")
                            break
                        except Exception as err:  # noqa: BLE001 - a pod deleted meanwhile, or an API hiccup
                            self.errors.append(f"finishing {pod['metadata']['name']}: {err}")
                            self.stop.wait(1)
            except Exception as err:  # noqa: BLE001 - keep playing kubelet through API hiccups
                self.errors.append(repr(err))
                self.stop.wait(0.5)
