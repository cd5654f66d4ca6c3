"""``tycho operator`` as a subprocess of a test: started watching one namespace, killed
and restarted at will, its logs and metrics at hand."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.support.cluster import SIGNING_SECRET, STATE, TYCHO, Cluster
from tests.support.waiting import free_port, wait_for


class Operator:
    """``tycho operator`` as a subprocess watching one namespace; kill and restart at will."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path) -> None:
        self.cluster, self.namespace, self.log_dir = cluster, namespace, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_env: dict[str, str] = {}
        # The operator's copy of the signing key (it seals run summaries), where the kubelet's
        # files are: hidden from stage containers like the rest of the cluster's state.
        self.signing_key = STATE / "keys" / f"{namespace}.key"
        self.starts = 0
        self.health_port = self.metrics_port = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self.health_port, self.metrics_port = free_port(), free_port()
        env = self.cluster.env()
        env.update(TYCHO_NAMESPACES=self.namespace, TYCHO_HEALTH_PORT=str(self.health_port),
                   TYCHO_METRICS_PORT=str(self.metrics_port), TYCHO_JOB_TTL_SECONDS="3600",
                   TYCHO_SIGNING_SECRET=SIGNING_SECRET, TYCHO_SIGNING_KEY=str(self.signing_key), **self.extra_env)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([TYCHO, "operator", "--verbose"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 30, "the operator's /healthz")

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def counted(self, name: str) -> float:
        """A counter (or a histogram's ``_count``) summed over its labels, as scraped now (0
        while the metrics port does not answer yet)."""
        try:
            text = self.metrics()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((f"{name} ", f"{name}{{")))

    def wait_passes(self, at_least: int, timeout: float = 30) -> float:
        """Until this operator process has reconciled ``at_least`` times (a restarted one
        passes every pipeline once: what it decided then is what it will do)."""
        passes: float = wait_for(lambda: (n := self.counted("tycho_reconcile_duration_seconds_count")) >= at_least
                                 and n, timeout, f"{at_least} reconcile passes")
        return passes

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))
