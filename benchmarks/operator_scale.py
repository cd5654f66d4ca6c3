"""Operator scale on the local kwok control plane: N pipelines of 7 stages, applied at once.

Measures, for N = 10, 100, 500 (``--n``):
  * time from apply to every pipeline's first Job, to all 7N Jobs, to all pipelines Succeeded;
  * per-stage operator overhead: from the moment the last upstream stage's pod was reported
    Succeeded to the moment the stage's Job appeared (watch-observed), median / p95 / max;
  * operator CPU seconds and peak RSS (from /proc of the operator process), and the mean
    reconcile latency from its /metrics.

Stage pods on kwok run no code. This harness plays the part of the kubelet *and* of the
stage pod: when a stage pod is Running it runs the wrapper's real fetch phase (inputs
fetched and verified), writes one small output per declared output in place of the run
phase, runs the real publish phase (outputs, signed record, cache entry), then patches the
pod Succeeded. The operator's path is therefore the real one (cache lookups that miss, Job
creation, Job watch, reading the cache entry, status, run summaries in MinIO); only the
user code is skipped. The harness runs on the same machine, so its CPU competes with the
operator's: numbers are upper bounds for the operator. The kwok nodes take 110 pods each,
so at N = 500 some stage pods wait for room (that wait is not operator overhead: the
overhead is measured to the Job's creation).

Needs a running cluster started with TYCHO_KWOK_AUTOCOMPLETE=0 (the default of
tests/cluster/up.sh): the harness, not kwok, decides when a pod is done.

Usage: .venv/bin/python benchmarks/operator_scale.py --n 10 100 500

``TYCHO_BENCH_WRAP`` runs the operator under another command, e.g. a memory profiler:
``TYCHO_BENCH_WRAP="python -m memray run -f -o /tmp/op-{phase}.bin"`` ({phase}: ``run``, then ``restart``
for the idle pass; the wrapper must run the operator in its own process, not a child).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("TYCHO_CLUSTER_DIR", REPO / ".cluster"))
SECRET = "tycho-store"
# a -> b -> {c, d} -> e -> f -> g : the digits pipeline's shape (fan-out, fan-in, tail)
SHAPE = {"a": [], "b": ["a"], "c": ["b"], "d": ["b"], "e": ["c", "d"], "f": ["e"], "g": ["f"]}


def operator_command(phase: str) -> list[str]:
    return [*shlex.split(os.environ.get("TYCHO_BENCH_WRAP", "").replace("{phase}", phase)),
            str(Path(sys.executable).with_name("tycho")), "operator"]


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def setup_env() -> dict[str, str]:
    if not (STATE / "kubeconfig").is_file():
        sys.exit("no cluster: run tests/cluster/build.sh && tests/cluster/up.sh")
    if env_file(STATE / "cluster.env").get("TYCHO_KWOK_AUTOCOMPLETE", "0") != "0":
        sys.exit("this cluster completes pods by itself (TYCHO_KWOK_AUTOCOMPLETE=1); the harness must write each "
                 "stage's outputs before its pod completes: restart it with TYCHO_KWOK_AUTOCOMPLETE=0")
    s3 = env_file(STATE / "s3.env")
    os.environ.update(s3, KUBECONFIG=str(STATE / "kubeconfig"))
    # A fresh cluster has no CRD yet: install the committed one (idempotent).
    kubectl = ["kubectl", "--kubeconfig", str(STATE / "kubeconfig")]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(REPO / "charts" / "tycho" / "files" / "crd.yaml")],
                   check=True, capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                    "crd/experimentpipelines.tycho.dev"], check=True, capture_output=True)
    return s3


def pipeline(i: int, ns: str, store: str) -> dict[str, Any]:
    stages = []
    for name, deps in SHAPE.items():
        stages.append({"name": name, "image": "tycho/stage-cpu:bench", "command": ["python", f"{name}.py"],
                       "params": {"seed": i}, "resources": {"cpu": "10m", "memory": "16Mi"},
                       "inputs": [{"name": d, "from": f"{d}/out"} for d in deps], "outputs": ["out"]})
    return {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline",
            "metadata": {"name": f"bench-{i:04d}", "namespace": ns},
            "spec": {"storage": {"url": store, "secretRef": {"name": SECRET}}, "maxParallel": 2, "stages": stages}}


def watch(kube: Any, path: str, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """Stream watch events (dicts) of a collection until ``stop`` is set."""
    version = ""
    while not stop.is_set():
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "30")]
        if version:
            query.append(("resourceVersion", version))
        m, url, h, b, _ = kube.api.param_serialize("GET", path, query_params=query,
                                                   header_params={"Accept": "application/json"},
                                                   auth_settings=["BearerToken"])
        resp = kube.api.call_api(m, url, header_params=h, _request_timeout=(5, 60))
        for line in resp.response:
            if stop.is_set():
                return
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":
                version = ""
                break
            version = obj.get("metadata", {}).get("resourceVersion", version)
            if event["type"] != "BOOKMARK":
                yield event


class Harness:
    """Plays kubelet + stage wrapper for every stage pod in the namespace."""

    def __init__(self, kube: Any, ns: str, store_url: str) -> None:
        from tycho.provenance import store as store_mod
        self.kube, self.ns = kube, ns
        self.store = store_mod.Store(store_url)
        self.stop = threading.Event()
        self.job_seen: dict[str, float] = {}
        self.pod_done: dict[str, float] = {}  # job name -> when its pod was reported Succeeded
        self.job_done: dict[str, float] = {}  # job name -> when its Complete condition was observed
        self.jobs: dict[str, dict[str, Any]] = {}
        self.handled: set[str] = set()
        self.pool = cf.ThreadPoolExecutor(max_workers=8)
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._watch_jobs, daemon=True).start()
        threading.Thread(target=self._watch_pods, daemon=True).start()

    def _watch_jobs(self) -> None:
        for event in watch(self.kube, f"/apis/batch/v1/namespaces/{self.ns}/jobs", self.stop):
            job = event["object"]
            name = job["metadata"]["name"]
            complete = any(c.get("type") == "Complete" and c.get("status") == "True"
                           for c in (job.get("status") or {}).get("conditions") or [])
            with self.lock:
                self.job_seen.setdefault(name, time.monotonic())
                self.jobs[name] = job
                if complete:
                    self.job_done.setdefault(name, time.monotonic())

    def _watch_pods(self) -> None:
        for event in watch(self.kube, f"/api/v1/namespaces/{self.ns}/pods", self.stop):
            pod = event["object"]
            uid = pod["metadata"]["uid"]
            if (event["type"] != "DELETED" and pod.get("status", {}).get("phase") == "Running"
                    and uid not in self.handled):
                self.handled.add(uid)
                self.pool.submit(self._complete, pod)

    def _complete(self, pod: dict[str, Any]) -> None:
        """The stage pod's work: the real fetch and publish phases of the wrapper, with the
        run phase replaced by writing one small output per declared output."""
        from tycho.kube import naming
        from tycho.provenance import code as code_mod
        from tycho.stage import fetch as fetch_mod, invocation, publish as publish_mod, work as work_mod
        try:
            job_name = pod["metadata"]["labels"]["batch.kubernetes.io/job-name"]
            job = self.jobs.get(job_name) or self.kube.get_job(self.ns, job_name)
            inv = invocation.Invocation.model_validate_json(
                job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION])
            with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
                work = work_mod.Work(Path(tmp))
                fetch_mod.fetch(inv, self.store, work)
                work.outputs.mkdir(parents=True)
                for o in inv.outputs:
                    (work.outputs / o.name).write_bytes(f"{inv.cache_key}:{o.name}\n".encode())
                work.metrics.write_text(json.dumps({"seed": float(inv.params["seed"])}) + "\n")
                if not inv.code.archive:  # the code in the image: the run phase archives it
                    (Path(tmp) / "code").mkdir()
                    work.code.write_bytes(code_mod.archive(Path(tmp) / "code"))
                work.ran.write_text(json.dumps({"ok": True, "attempts": 1, "reason": "", "facts": {},
                                                "stopped": None, "began": time.time()}))
                publish_mod.publish(inv, self.store, work, log=lambda line: None)
            status = {"phase": "Succeeded", "containerStatuses": [{
                "name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}} for c in pod["spec"]["containers"]]}
            self.kube._call("PATCH", f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}/status",
                            body={"status": status}, content_type="application/merge-patch+json")
            with self.lock:
                self.pod_done[job_name] = time.monotonic()
        except Exception as err:  # noqa: BLE001 - reported at the end
            self.errors.append(f"{pod['metadata']['name']}: {err}")


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds user+system, peak RSS MiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    return cpu, hwm / 1024


def rss_mib(pid: int) -> float:
    """The resident set of a process now, MiB."""
    return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")) / 1024


def metric(text: str, prefix: str) -> float:
    """The sum of a Prometheus metric's samples whose line starts with ``prefix``."""
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


def idle_reconciles(op: subprocess.Popen[bytes], env: dict[str, str], port: int, log: Any, n: int) -> dict[str, float]:
    """Restart the operator once every pipeline is done: it reconciles each of them once,
    with nothing to do. Returns the reconciles made, the API calls they cost, and the
    seconds from the restart until every pipeline had its pass (``ready_s``)."""
    op.send_signal(signal.SIGTERM)
    op.wait(30)
    again = subprocess.Popen(operator_command("restart"), env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        deadline, ready = started + 600, None
        text = ""
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
                if metric(text, "tycho_reconcile_duration_seconds_count") >= n:
                    ready = time.monotonic() - started
                    break
            except OSError:
                pass
            time.sleep(0.5)
        time.sleep(2)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        _, rss = proc_stats(again.pid)
        return {"reconciles": metric(text, "tycho_reconcile_duration_seconds_count"),
                "api_calls": metric(text, "tycho_api_calls_total{"), "startup_rss_mib": rss, "ready_s": ready}
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))] if ordered else float("nan")


def run(n: int, s3: dict[str, str], timeout: float, keep: bool = False) -> dict[str, Any]:
    from tycho.kube import client, naming
    kube = client.Kube(client.api_client(pool_size=16))
    ns = f"bench-{n}-{uuid.uuid4().hex[:5]}"
    kubectl = ["kubectl", "--kubeconfig", str(STATE / "kubeconfig")]
    subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
    subprocess.run([*kubectl, "-n", ns, "create", "secret", "generic", SECRET,
                    *(f"--from-literal={k}={s3[k]}"
                      for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"))],
                   check=True, capture_output=True)
    store = f"s3://tycho/{ns}"
    metrics_port = free_port()
    env = dict(os.environ, TYCHO_NAMESPACES=ns, TYCHO_METRICS_PORT=str(metrics_port),
               TYCHO_HEALTH_PORT=str(free_port()))
    log = open(f"/tmp/{ns}-operator.log", "wb")
    op = subprocess.Popen(operator_command("run"), env=env, stdout=log,
                          stderr=subprocess.STDOUT)
    harness = Harness(kube, ns, store)
    try:
        for _ in range(100):  # wait until the operator serves /metrics (it is watching then)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1)
        cpu0, _ = proc_stats(op.pid)
        harness.start()
        docs = [pipeline(i, ns, store) for i in range(n)]
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda d: kube._call("POST", f"/apis/tycho.dev/v1alpha1/namespaces/{ns}/experimentpipelines",
                                               body=d), docs))
        t_applied = time.monotonic() - t0
        first_jobs = all_jobs = done_at = None
        timeline: list[tuple[float, float, int]] = []  # (seconds since apply, RSS MiB, Jobs seen)
        while time.monotonic() - t0 < timeout:
            with harness.lock:
                seen = dict(harness.job_seen)
            timeline.append((time.monotonic() - t0, rss_mib(op.pid), len(seen)))
            pipes = {j.rsplit("-", 2)[0] for j in seen}
            if first_jobs is None and len(pipes) == n:
                first_jobs = max(min(t for j, t in seen.items() if j.rsplit("-", 2)[0] == p) for p in pipes) - t0
            if all_jobs is None and len(seen) == 7 * n:
                all_jobs = max(seen.values()) - t0
            items = kube._call("GET", f"/apis/tycho.dev/v1alpha1/namespaces/{ns}/experimentpipelines")["items"]
            phases = [(i.get("status") or {}).get("phase") for i in items]
            if phases.count("Succeeded") == n:
                done_at = time.monotonic() - t0
                break
            if "Failed" in phases:
                bad = next(i for i in items if (i.get("status") or {}).get("phase") == "Failed")
                raise SystemExit(f"pipeline failed: {bad['status'].get('message')}")
            if len(harness.errors) >= 3:  # a harness out of step with the wrapper: say so, do not wait
                raise SystemExit(f"the harness failed to complete stage pods: {harness.errors[:3]}")
            time.sleep(0.5)
        cpu1, peak = proc_stats(op.pid)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        rec_sum, rec_count = metric(text, "tycho_reconcile_duration_seconds_sum"), metric(
            text, "tycho_reconcile_duration_seconds_count")
        api_calls = metric(text, "tycho_api_calls_total{")
        idle = idle_reconciles(op, env, metrics_port, log, n) if done_at is not None else None
        # Per-stage overhead: upstream pod reported done -> downstream Job observed.
        overheads: list[float] = []
        operator_only: list[float] = []
        slowest: list[tuple[float, float, str]] = []  # (operator part, upstream done since apply, Job)
        with harness.lock:
            seen, done, complete = dict(harness.job_seen), dict(harness.pod_done), dict(harness.job_done)
        by_pipe: dict[str, dict[str, str]] = {}
        for job_name, job in harness.jobs.items():
            labels = job["metadata"]["labels"]
            by_pipe.setdefault(labels[naming.LABEL_PIPELINE], {})[labels[naming.LABEL_STAGE]] = job_name
        for stages in by_pipe.values():
            for stage, deps in SHAPE.items():
                if deps and stage in stages and all(d in stages and stages[d] in done for d in deps):
                    overheads.append(seen[stages[stage]] - max(done[stages[d]] for d in deps))
                if deps and stage in stages and all(d in stages and stages[d] in complete for d in deps):
                    ready = max(complete[stages[d]] for d in deps)
                    operator_only.append(seen[stages[stage]] - ready)
                    slowest.append((seen[stages[stage]] - ready, ready - t0, stages[stage]))
        return {"n": n, "stages": 7 * n, "applied_s": t_applied, "first_jobs_s": first_jobs, "all_jobs_s": all_jobs,
                "succeeded_s": done_at, "overhead_median_s": statistics.median(overheads) if overheads else None,
                "overhead_p95_s": pct(overheads, 0.95), "overhead_max_s": max(overheads, default=None),
                "operator_median_s": statistics.median(operator_only) if operator_only else None,
                "operator_p95_s": pct(operator_only, 0.95), "operator_p99_s": pct(operator_only, 0.99),
                "api_calls": int(api_calls), "idle": idle,
                "operator_cpu_s": cpu1 - cpu0, "operator_peak_rss_mib": peak,
                "rss_peak_sampled": max(timeline, key=lambda x: x[1], default=None),
                "rss_timeline": timeline[::20],
                "slowest": sorted(slowest, reverse=True)[:max(5, len(slowest) // 100)],
                "reconciles": int(rec_count), "reconcile_mean_ms": 1000 * rec_sum / max(rec_count, 1),
                "harness_errors": harness.errors[:5]}
    finally:
        harness.stop.set()
        op.send_signal(signal.SIGTERM)
        try:
            op.wait(20)
        except subprocess.TimeoutExpired:
            op.kill()
        if keep:
            print(f"kept namespace {ns} (its pipelines, Jobs and store prefix {store}); start the operator on it "
                  f"with TYCHO_NAMESPACES={ns}", file=sys.stderr)
        else:
            subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 500], help="pipelines per round")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per round")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep each round's namespace (to study a restart)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "operator"))
    s3 = setup_env()
    results = [run(n, s3, args.timeout, args.keep) for n in args.n]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    fmt = lambda v, unit="s": "n/a" if v is None else f"{v:.2f}{unit}"  # noqa: E731
    print(f"{'N':>5} {'stages':>6} {'1st Jobs':>9} {'all Jobs':>9} {'all done':>9} {'stage overhead med/p95/max':>28} "
          f"{'operator part p50/p95/p99':>26} {'op CPU':>8} {'op RSS':>9} {'reconciles':>10} {'mean':>8} "
          f"{'API calls':>9} {'idle calls/reconciles in':>26}")
    for r in results:
        ovh = f"{fmt(r['overhead_median_s'])}/{fmt(r['overhead_p95_s'])}/{fmt(r['overhead_max_s'])}"
        part = f"{fmt(r['operator_median_s'])}/{fmt(r['operator_p95_s'])}/{fmt(r['operator_p99_s'])}"
        idle = r["idle"] or {}
        idle_text = (f"{idle.get('api_calls', float('nan')):.0f}/{idle.get('reconciles', float('nan')):.0f}"
                     f" in {fmt(idle.get('ready_s'))}")
        print(f"{r['n']:>5} {r['stages']:>6} {fmt(r['first_jobs_s']):>9} {fmt(r['all_jobs_s']):>9} "
              f"{fmt(r['succeeded_s']):>9} {ovh:>28} {part:>26} {fmt(r['operator_cpu_s']):>8} "
              f"{r['operator_peak_rss_mib']:>6.0f}MiB {r['reconciles']:>10} {r['reconcile_mean_ms']:>6.1f}ms "
              f"{r['api_calls']:>9} {idle_text:>26}")
        if r["rss_peak_sampled"]:
            at, mib, jobs = r["rss_peak_sampled"]
            print(f"  operator RSS: highest sample {mib:.0f} MiB, {at:.0f}s after apply with {jobs} Jobs seen")
        if r["slowest"]:
            when = sorted(at for _, at, _ in r["slowest"])
            print(f"  slowest 1% of stage starts: upstream done between {when[0]:.0f}s and {when[-1]:.0f}s after apply "
                  f"(median {statistics.median(when):.0f}s)")
        if r["harness_errors"]:
            print("  harness errors:", r["harness_errors"])


if __name__ == "__main__":
    main()
