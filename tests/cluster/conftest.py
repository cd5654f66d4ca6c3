"""Cluster tests: a real control plane (tests/cluster/up.sh: etcd, kube-apiserver,
controller-manager, scheduler, kwok nodes, MinIO) and the operator as a subprocess.

kwok pods run no code, so the tests play kubelet: they read back the Job the operator
created, run the stage wrapper *locally* with exactly that Job's command and environment
(secretKeyRef entries resolved by reading the Secret, fieldRef entries from the pod) and
against the real MinIO, then patch the pod's status to Succeeded or Failed. What the
operator does next is then real: Job controller, watches, status, store reads.

Fixtures: ``cluster`` (session: starts the control plane unless one is live; stops it at
the end only if it started it), ``kube`` (a small client), ``space`` (a fresh namespace
with the store Secret and an operator watching only it).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tycho.kube import client, naming
from tycho.provenance import layout, signing, store as store_mod
from tycho.stage import invocation

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("TYCHO_CLUSTER_DIR", REPO / ".cluster"))
SCRIPTS = REPO / "tests" / "cluster"
CRD = REPO / "charts" / "tycho" / "files" / "crd.yaml"
TOY = REPO / "tests" / "fixtures" / "toy"
VENV_BIN = Path(sys.executable).parent
TYCHO = str(VENV_BIN / "tycho")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
PIPELINES = "/apis/tycho.dev/v1alpha1/namespaces/{ns}/experimentpipelines"
SECRET = "tycho-store"
SIGNING_SECRET = "tycho-signing"

pytestmark = pytest.mark.cluster


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition", interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def _live() -> bool:
    kubeconfig = STATE / "kubeconfig"
    if not kubeconfig.is_file():
        return False
    probe = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=20)
    return probe.returncode == 0


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


@dataclasses.dataclass
class Cluster:
    kubeconfig: Path
    s3: dict[str, str]

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, check=check, input=input, timeout=60)

    def env(self) -> dict[str, str]:
        """Environment for processes talking to this cluster and its MinIO."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TYCHO_"))}
        env.update(self.s3)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started = False
    if not _live():
        env = dict(os.environ, TYCHO_KWOK_AUTOCOMPLETE="0")
        subprocess.run(["bash", str(SCRIPTS / "build.sh")], check=True, env=env)
        subprocess.run(["bash", str(SCRIPTS / "up.sh")], check=True, env=env)
        started = True
    auto = read_env_file(STATE / "cluster.env").get("TYCHO_KWOK_AUTOCOMPLETE", "0")
    if auto != "0":
        pytest.fail("the running cluster completes pods by itself (TYCHO_KWOK_AUTOCOMPLETE=1); "
                    "the tests need to control pods: run tests/cluster/down.sh first")
    c = Cluster(STATE / "kubeconfig", read_env_file(STATE / "s3.env"))
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/experimentpipelines.tycho.dev")
    # This test process reads MinIO (to upload inputs, to check records) and the API server
    # with the cluster's credentials; the stage runs it starts get only their Job's env.
    saved = {k: os.environ.get(k) for k in [*c.s3, "KUBECONFIG"]}
    os.environ.update(c.s3, KUBECONFIG=str(c.kubeconfig))
    try:
        yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if started:
            subprocess.run(["bash", str(SCRIPTS / "down.sh")], check=False)


class Kube(client.Kube):
    """The operator's own client plus what a test (or a kubelet) needs on top."""

    def pipelines(self, ns: str) -> str:
        return PIPELINES.format(ns=ns)

    def create_pipeline(self, doc: dict[str, Any]) -> dict[str, Any]:
        ns = doc["metadata"]["namespace"]
        created: dict[str, Any] = self._call("POST", self.pipelines(ns), body=doc)
        return created

    def patch_spec(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self._call("PATCH", f"{self.pipelines(ns)}/{name}", body={"spec": spec},
                   content_type="application/merge-patch+json")

    def delete_pipeline(self, ns: str, name: str) -> None:
        self._call("DELETE", f"{self.pipelines(ns)}/{name}")

    def jobs(self, ns: str) -> list[dict[str, Any]]:
        doc = self._call("GET", client.JOBS.format(ns=ns), query=[("labelSelector", naming.LABEL_PIPELINE)])
        items: list[dict[str, Any]] = doc["items"]
        return sorted(items, key=lambda j: j["metadata"]["creationTimestamp"])

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        doc = self._call("GET", client.PODS.format(ns=ns), query=[("labelSelector", selector)])
        items: list[dict[str, Any]] = doc["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def secret(self, ns: str, name: str) -> dict[str, str]:
        doc = self._call("GET", f"/api/v1/namespaces/{ns}/secrets/{name}")
        return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        doc = self._call("GET", f"/api/v1/namespaces/{ns}/events",
                         query=[("fieldSelector", f"involvedObject.name={name}")])
        items: list[dict[str, Any]] = doc["items"]
        return items

    def finish_pod(self, pod: dict[str, Any], *, ok: bool, exit_code: int | None = None, message: str = "",
                   image_id: str = "") -> None:
        """Play kubelet: the stage container terminated, the pod is Succeeded or Failed."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        code = (0 if ok else 1) if exit_code is None else exit_code
        terminated = {"exitCode": code, "reason": "Completed" if ok else "Error", "startedAt": now, "finishedAt": now}
        if message:
            terminated["message"] = message
        container = pod["spec"]["containers"][0]
        status = {"phase": "Succeeded" if ok else "Failed", "containerStatuses": [{
            "name": container["name"], "image": container["image"], "imageID": image_id, "ready": False,
            "restartCount": 0, "started": False, "state": {"terminated": terminated}}]}
        self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body={"status": status},
                   content_type="application/merge-patch+json")

    def finish_containers(self, pod: dict[str, Any],
                          results: list[tuple[dict[str, Any], subprocess.CompletedProcess[str]]], image_id: str) -> None:
        """Play kubelet for a multi-container pod: each container that ran terminated with its
        exit code (the last lines of a failed one as its termination message, as
        FallbackToLogsOnError does); the pod failed if any did."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ran = {c["name"]: p for c, p in results}
        spec = pod["spec"]

        def status(container: dict[str, Any]) -> dict[str, Any]:
            proc = ran.get(container["name"])
            if proc is None:
                state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
            else:
                terminated: dict[str, Any] = {"exitCode": proc.returncode, "startedAt": now, "finishedAt": now,
                                              "reason": "Completed" if proc.returncode == 0 else "Error"}
                if proc.returncode:
                    terminated["message"] = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
                state = {"terminated": terminated}
            return {"name": container["name"], "image": container["image"], "imageID": image_id, "ready": False,
                    "restartCount": 0, "started": False, "state": state}

        ok = all(p.returncode == 0 for p in ran.values()) and len(ran) == len(spec.get("initContainers", [])) + len(
            spec["containers"])
        body = {"phase": "Succeeded" if ok else "Failed",
                "initContainerStatuses": [status(c) for c in spec.get("initContainers", [])],
                "containerStatuses": [status(c) for c in spec["containers"]]}
        self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", body={"status": body},
                   content_type="application/merge-patch+json")


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Kube:
    return Kube(client.api_client())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        self.health_port, self.metrics_port = _free_port(), _free_port()
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

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


@dataclasses.dataclass
class Space:
    """One test's world: namespace, store prefix, operator, and the toy pipeline's pieces."""

    ns: str
    cluster: Cluster
    kube: Kube
    operator: Operator
    store: str
    tmp: Path
    ran: list[str] = dataclasses.field(default_factory=list)
    containers: dict[str, list[tuple[dict[str, Any], subprocess.CompletedProcess[str]]]] = dataclasses.field(
        default_factory=dict)
    """Per Job UID: the containers of its last pod run, and how each ended."""
    executed: set[str] = dataclasses.field(default_factory=set)  # (job uid, attempt) already run
    code_dir: Path = TOY / "code"  # where the stage code lives on this machine (the image has it at workdir)

    # ---- manifests -----------------------------------------------------------------
    def notes_url(self) -> str:
        """Upload the toy's external input to MinIO; returns its s3:// URL."""
        s = store_mod.Store(self.store)
        s.fs.pipe_file(f"{s.root}/inputs/notes.txt", b"cluster notes\n")
        return f"{self.store}/inputs/notes.txt"

    def toy(self, name: str = "toy", manifest: str = "toy.yaml") -> dict[str, Any]:
        text = (TOY / manifest).read_text()
        if "NOTES_URL" in text:
            text = text.replace("NOTES_URL", self.notes_url())
        doc: dict[str, Any] = yaml.safe_load(text)
        doc["metadata"] = {"name": name, "namespace": self.ns}
        doc["spec"]["storage"] = {"url": self.store, "secretRef": {"name": SECRET}}
        doc["spec"].pop("code", None)
        doc["spec"]["code"] = {"workdir": "/app/pipeline"}
        return doc

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self.kube.create_pipeline(copy.deepcopy(doc))

    # ---- observing ---------------------------------------------------------------------
    def pipeline(self, name: str = "toy") -> dict[str, Any]:
        doc = self.kube.get_pipeline(self.ns, name)
        assert doc is not None, f"pipeline {name} is gone"
        return doc

    def status(self, name: str = "toy") -> dict[str, Any]:
        st: dict[str, Any] = self.pipeline(name).get("status") or {}
        return st

    def stage(self, stage: str, name: str = "toy") -> dict[str, Any]:
        return next((s for s in self.status(name).get("stages", []) if s["name"] == stage), {})

    def jobs(self, stage: str | None = None) -> list[dict[str, Any]]:
        found = self.kube.jobs(self.ns)
        return [j for j in found if stage is None or j["metadata"]["labels"][naming.LABEL_STAGE] == stage]

    def wait_phase(self, phase: str, name: str = "toy", timeout: float = 30) -> dict[str, Any]:
        st: dict[str, Any] = wait_for(lambda: (s := self.status(name)).get("phase") == phase and s, timeout,
                                      f"pipeline {name} phase {phase}")
        return st

    def wait_job(self, stage: str, timeout: float = 30) -> dict[str, Any]:
        job: dict[str, Any] = wait_for(lambda: next(iter(self.jobs(stage)), None), timeout, f"a Job for stage {stage}")
        return job

    def wait_events(self, *reasons: str, name: str = "toy", timeout: float = 15) -> list[str]:
        """The reasons of the pipeline's Events once all of ``reasons`` were posted (kopf posts
        them in the background)."""
        def got() -> list[str] | None:
            found = [e["reason"] for e in self.kube.events(self.ns, name)]
            return found if all(r in found for r in reasons) else None

        found: list[str] = wait_for(got, timeout, f"events {reasons} on {name}")
        return found

    def wait_pod(self, job: dict[str, Any], count: int = 1, timeout: float = 30) -> dict[str, Any]:
        """The job's ``count``-th pod once it is Running (kwok started it)."""
        sel = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"

        def running() -> dict[str, Any] | None:
            pods = self.kube.pods(self.ns, sel)
            if len(pods) >= count and pods[count - 1].get("status", {}).get("phase") == "Running":
                return pods[count - 1]
            return None

        pod: dict[str, Any] = wait_for(running, timeout, f"pod {count} of Job {job['metadata']['name']} Running")
        return pod

    # ---- playing kubelet ----------------------------------------------------------------
    def container_env(self, job: dict[str, Any], pod: dict[str, Any], container: dict[str, Any] | None = None
                      ) -> dict[str, str]:
        """One container's environment as the kubelet would build it (only its own entries)."""
        container = container or job["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            source = item["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                data = self.kube.secret(self.ns, ref["name"])
                if ref["key"] in data:
                    env[item["name"]] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise AssertionError(f"secret {ref['name']} has no key {ref['key']}")
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                if path == "spec.nodeName":
                    env[item["name"]] = pod["spec"].get("nodeName", "")
                    continue
                assert path.startswith("metadata.labels['"), path
                env[item["name"]] = pod["metadata"]["labels"][path[len("metadata.labels['"):-2]]
        return env

    def _volumes(self, job: dict[str, Any], root: Path) -> None:
        """emptyDirs as folders under the pod's root; Secret volumes written out as files."""
        spec = job["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for c in [*spec.get("initContainers", []), *spec["containers"]]
                  for m in c.get("volumeMounts", [])}
        for volume in spec.get("volumes", []):
            where = root / mounts.get(volume["name"], f"/unmounted/{volume['name']}").lstrip("/")
            where.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                for key, value in self.kube.secret(self.ns, volume["secret"]["secretName"]).items():
                    (where / key).write_text(value)
            for item in volume.get("downwardAPI", {}).get("items", []):
                path = item["fieldRef"]["fieldPath"]
                assert path.startswith("metadata.annotations['"), path
                annotations = job["spec"]["template"]["metadata"].get("annotations", {})
                (where / item["path"]).write_text(annotations[path[len("metadata.annotations['"):-2]])

    def _command(self, container: dict[str, Any], root: Path, user: bool) -> list[str]:
        """The container's command; the user's container in its own PID and mount namespace,
        as a container runtime would put it: it sees only its own processes, the volumes it
        mounts (read-only where the pod says so), and none of the kubelet's or the other
        containers' files (the cluster state, the signing key, the fetch state, this
        process's home)."""
        cmd = [TYCHO if container["command"][0] == "tycho" else container["command"][0], *container["command"][1:]]
        if "--invocation" in cmd:  # an in-pod path: under the pod's root here
            at = cmd.index("--invocation") + 1
            cmd[at] = str(root / cmd[at].lstrip("/"))
        if not user:
            return cmd
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        hide = [STATE, *[root / p.lstrip("/") for p in ("stage/state", "var")]]
        script = ["set -e"]
        script += [f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(h))}" for h in hide if h.exists()]
        for path, mount in mounts.items():
            host = shlex.quote(str(root / path.lstrip("/")))
            if mount.get("readOnly"):
                script.append(f"mount --bind {host} {host} && mount -o remount,bind,ro {host}")
        script.append('exec "$@"')
        return ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", "\n".join(script), "sh", *cmd]

    def run_stage(self, job: dict[str, Any], pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run the pod's containers in order, as a kubelet would: init containers one after
        another (a failing one ends the pod), then the publishing container; each with only
        its own environment, code from the checkout instead of the image. In-pod paths live
        under a per-pod root on this machine (``TYCHO_WORK`` and the signing key point there)."""
        spec = job["spec"]["template"]["spec"]
        root = Path(tempfile.mkdtemp(prefix="tycho-pod-"))
        self._volumes(job, root)
        results: list[tuple[dict[str, Any], subprocess.CompletedProcess[str]]] = []
        sidecars: list[tuple[dict[str, Any], subprocess.Popen[str]]] = []
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            env = self.container_env(job, pod, container)
            for name in ("TYCHO_WORK", "TYCHO_SIGNING_KEY"):
                if name in env:
                    env[name] = str(root / env[name].lstrip("/"))
            env.update(PATH=f"{VENV_BIN}:/usr/bin:/bin", TYCHO_CODE_DIR=str(self.code_dir), HOME=str(self.tmp))
            user = container["name"] == "stage"
            if user:
                env["HOME"] = str(root / "tmp")
                (root / "tmp").mkdir(exist_ok=True)
            if container.get("restartPolicy") == "Always":  # a native sidecar: runs beside what follows
                sidecars.append((container, subprocess.Popen(
                    self._command(container, root, user), env=env, cwd=str(self.code_dir), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)))
                continue
            proc = subprocess.run(self._command(container, root, user), env=env, cwd=str(self.code_dir),
                                  capture_output=True, text=True, timeout=900)
            results.append((container, proc))
            if proc.returncode != 0:
                break
        for container, side in sidecars:  # the pod ends: the kubelet stops its sidecars
            side.terminate()
            out, err = side.communicate(timeout=60)
            results.append((container, subprocess.CompletedProcess(side.args, 0 if side.returncode in (0, -15) else
                                                                   side.returncode, out, err)))
        self.ran.append(job["metadata"]["labels"][naming.LABEL_STAGE])
        self.containers[job["metadata"]["uid"]] = results
        shutil.rmtree(root, ignore_errors=True)
        failed = next((p for _, p in results if p.returncode != 0), None)
        return subprocess.CompletedProcess(args=[c["name"] for c, _ in results],
                                           returncode=failed.returncode if failed else 0,
                                           stdout="".join(p.stdout for _, p in results),
                                           stderr="".join(p.stderr for _, p in results))

    def execute(self, job: dict[str, Any], *, attempt: int = 1, image_id: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run one attempt of a Job's pod for real and report its end as the kubelet would."""
        pod = self.wait_pod(job, attempt)
        self.executed.add(f"{job['metadata']['uid']}/{attempt}")
        proc = self.run_stage(job, pod)
        self.kube.finish_containers(pod, self.containers[job["metadata"]["uid"]],
                                    image_id=image_id or f"docker.io/tycho/stage-cpu@sha256:{'ab' * 32}")
        return proc

    def drive(self, name: str = "toy", timeout: float = 180) -> dict[str, Any]:
        """Run every Job the operator creates until the pipeline finishes; returns its status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(name)
            if st.get("phase") in ("Succeeded", "Failed"):
                return st
            for job in self.jobs():
                mine = job["metadata"]["labels"][naming.LABEL_PIPELINE] == name
                if mine and f"{job['metadata']['uid']}/1" not in self.executed:
                    proc = self.execute(job)
                    assert proc.returncode == 0, proc.stdout + proc.stderr
            time.sleep(0.2)
        raise AssertionError(f"pipeline {name} did not finish in {timeout}s: {json.dumps(self.status(name))[:2000]}")

    def store_json(self, ref: str) -> Any:
        """A JSON document of the store, by path or by (absolute, as status shows it) URI."""
        return store_mod.Store(self.store).read_json(layout.rel(ref))


def make_space(cluster: Cluster, kube: Kube, tmp: Path, prefix: str) -> Space:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    s3 = cluster.s3
    cluster.kubectl("-n", ns, "create", "secret", "generic", SECRET,
                    f"--from-literal=AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}",
                    f"--from-literal=AWS_ENDPOINT_URL={s3['AWS_ENDPOINT_URL']}")
    key = signing.ensure_key(STATE / "keys" / f"{ns}.key")
    cluster.kubectl("-n", ns, "create", "secret", "generic", SIGNING_SECRET, f"--from-file=signing.key={key}")
    wait_for(lambda: cluster.kubectl("-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0,
             30, "the namespace's default ServiceAccount")
    operator = Operator(cluster, ns, tmp)
    operator.start()
    return Space(ns=ns, cluster=cluster, kube=kube, operator=operator, store=f"s3://tycho/{ns}", tmp=tmp)


def drop_space(space: Space) -> None:
    space.operator.kill(signal.SIGTERM)
    space.cluster.kubectl("delete", "namespace", space.ns, "--wait=false", check=False)


@pytest.fixture
def space(cluster: Cluster, kube: Kube, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Space]:
    sp = make_space(cluster, kube, tmp_path, request.node.name.replace("_", "-")[5:25].strip("-").lower())
    try:
        yield sp
    finally:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(f"---- operator log ({sp.ns}) ----\n{sp.operator.logs()[-6000:]}")
        drop_space(sp)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)


def job_invocation(job: dict[str, Any]) -> invocation.Invocation:
    """The invocation a Job carries (what the wrapper in its pod reads)."""
    return invocation.Invocation.model_validate_json(
        job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION])
