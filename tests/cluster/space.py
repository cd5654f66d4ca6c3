"""One cluster test's world: a fresh namespace with the store Secret and an operator
watching only it, the toy pipeline's manifests, and a kubelet played by the test.

kwok pods run no code, so the tests play kubelet: they read back the Job the operator
created, run the stage wrapper *locally* with exactly that Job's command and environment
(secretKeyRef entries resolved by reading the Secret, fieldRef entries from the pod) and
against the real MinIO, then patch the pod's status to Succeeded or Failed. What the
operator does next is then real: Job controller, watches, status, store reads.
"""

from __future__ import annotations

import copy
import dataclasses
import getpass
import json
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.operator_process import Operator
from tests.support import kubelet
from tests.support.cluster import SECRET, SIGNING_SECRET, STATE, TOY, TYCHO, VENV_BIN, Cluster, Kube
from tests.support.waiting import wait_for
from tycho.kube import naming
from tycho.provenance import layout, signing, store as store_mod
from tycho.stage import invocation


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
        """One container's environment as the kubelet would build it (its first, by default)."""
        first = job["spec"]["template"]["spec"]["containers"][0]
        return kubelet.container_env(self.kube, self.ns, pod, container or first)

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
        # What a container on a real node never sees: the cluster's state, the pod's own fetch
        # state, and every test session's temporary files (other tests' pods, values files).
        # This test's own folder stays in sight (a test may hand its stage a file there).
        sessions = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
        hide = [STATE, sessions, *[root / p.lstrip("/") for p in ("stage/state", "var")]]
        own, kept = shlex.quote(str(self.tmp)), shlex.quote(str(root / "test-tmp"))
        (root / "test-tmp").mkdir(exist_ok=True)
        script = ["set -e", f"mount --bind {own} {kept}"]
        script += [f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(h))}" for h in hide if h.exists()]
        script.append(f"mkdir -p {own} && mount --bind {kept} {own}")
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
        for container in kubelet.containers({"spec": spec}):
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

    def execute(self, job: dict[str, Any], *, attempt: int = 1,
                image_id: str | None = None) -> subprocess.CompletedProcess[str]:
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


def job_invocation(job: dict[str, Any]) -> invocation.Invocation:
    """The invocation a Job carries (what the wrapper in its pod reads)."""
    return invocation.Invocation.model_validate_json(
        job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION])
