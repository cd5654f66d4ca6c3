"""The Kubernetes executor: Jobs and Pods from the watches become executions; what the
watches have not shown yet is bridged by its memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.kube import kubefakes as fk
from tycho.api import validation
from tycho.executors import kube as kube_executor
from tycho.kube import jobs, naming
from tycho.provenance import cache, documents, store as store_mod
from tycho.settings import Settings

KEY = "ab" * 32


class Api:
    """The API server's answers (only what the executor asks: it reads Jobs from the watch)."""

    def __init__(self, pods: dict[str, Any] | None = None) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.existing: dict[str, dict[str, Any]] = {}
        self.pods = pods or {}
        self.pod_reads = 0

    def job_pods(self, ns: str, uid: str) -> list[dict[str, Any]]:
        self.pod_reads += 1
        return list(self.pods.get(uid, []))

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        name = manifest["metadata"]["name"]
        if name in self.existing:
            return self.existing[name], False
        self.created.append(name)
        return manifest, True

    def delete_job(self, ns: str, name: str) -> None:
        self.deleted.append(name)


def _executor(tmp_path: Path, jobs_: dict[str, Any] | None = None, pods: dict[str, Any] | None = None,
              memory: kube_executor.Memory | None = None, api: Api | None = None) -> kube_executor.KubeExecutor:
    api = api or Api(pods)
    return kube_executor.KubeExecutor(kube=api, settings=Settings(), pipeline=fk.toy(),  # type: ignore[arg-type]
                                      store=store_mod.Store(f"file://{tmp_path}"), jobs=jobs_ or {},
                                      memory=memory or kube_executor.Memory())


def _job(phase: str, **kw: Any) -> dict[str, Any]:
    manifest = jobs.build_job(pipeline=fk.toy(), start=fk.start(fk.toy(), "generate", KEY), settings=Settings())
    return fk.finish(manifest, phase, **kw)


def test_a_running_job_is_a_running_execution_of_its_run_and_key(tmp_path: Path) -> None:
    job = _job("Running", failed=1)
    (ex,) = _executor(tmp_path, {job["metadata"]["name"]: job}).observe().values()
    assert (ex.stage, ex.cache_key, ex.run_id, ex.phase, ex.attempts) == ("generate", KEY, fk.RUN, "Running", 2)


def test_a_succeeded_job_brings_what_its_wrapper_recorded_and_the_image_the_node_ran(tmp_path: Path) -> None:
    job = _job("Succeeded")
    store = store_mod.Store(f"file://{tmp_path}")
    cache.write(store, documents.CacheEntry(key=KEY, record="records/r/generate.json", outputs={"numbers": "1" * 64}))
    pod = {"metadata": {"name": "p", "creationTimestamp": "t"},
           "status": {"phase": "Succeeded",
                      "containerStatuses": [{"name": "stage", "imageID": "reg/x@sha256:" + "e" * 64}]}}
    memory, api = kube_executor.Memory(), Api({job["metadata"]["uid"]: [pod]})
    for _ in range(3):
        (ex,) = _executor(tmp_path, {job["metadata"]["name"]: job}, memory=memory, api=api).observe().values()
    assert ex.phase == "Succeeded" and ex.result is not None and ex.result.outputs == {"numbers": "1" * 64}
    assert ex.image is not None and ex.image.digest == "e" * 64 and ex.image.resolved_by == "kubelet"
    # the reference is the stage container's image, the one whose digest is reported
    assert ex.image.reference == next(s.image for s in fk.toy().spec.stages if s.name == "generate")
    assert api.pod_reads == 1  # a finished Job is read once


def test_a_failed_job_explains_itself_from_its_pod(tmp_path: Path) -> None:
    job = _job("Failed", failed=1)
    pod = {"metadata": {"name": "toy-generate-x-abc", "creationTimestamp": "t"},
           "status": {"phase": "Failed", "containerStatuses": [{"name": "stage", "state": {"terminated": {
               "exitCode": 1, "reason": "Error", "message": "[tycho] stage 'generate' failed: exit code 3"}}}]}}
    (ex,) = _executor(tmp_path, {job["metadata"]["name"]: job}, {job["metadata"]["uid"]: [pod]}).observe().values()
    assert ex.phase == "Failed" and "BackoffLimitExceeded" in ex.message
    assert "exit code 1 (Error): [tycho] stage 'generate' failed: exit code 3" in ex.message


def test_a_job_just_created_counts_as_running_until_the_watch_shows_it(tmp_path: Path) -> None:
    memory, api = kube_executor.Memory(), Api()
    start = fk.start(fk.toy(), "generate", KEY)
    first = _executor(tmp_path, memory=memory, api=api)
    first.start(start)
    assert api.created == [start.execution] and first.created_jobs == 1
    (ex,) = _executor(tmp_path, memory=memory, api=api).observe().values()  # next reconcile, watch behind
    assert ex.id == start.execution and ex.phase == "Running"
    ((_, (_, kept)),) = memory.created.items()  # what is remembered of it is what the index would keep
    assert (naming.ANNOTATION_INVOCATION not in str(kept)
            and kept["metadata"]["labels"][naming.LABEL_STAGE] == "generate")


def test_a_job_just_deleted_counts_as_deleting_and_is_deleted_once(tmp_path: Path) -> None:
    job = _job("Running")
    memory, api = kube_executor.Memory(), Api()
    ex = _executor(tmp_path, {job["metadata"]["name"]: job}, memory=memory, api=api)
    ex.cancel(job["metadata"]["name"])
    ex.cancel(job["metadata"]["name"])
    assert api.deleted == [job["metadata"]["name"]]
    (seen,) = _executor(tmp_path, {job["metadata"]["name"]: job}, memory=memory, api=api).observe().values()
    assert seen.deleting


def test_a_name_held_by_a_job_on_its_way_out_blocks_the_start(tmp_path: Path) -> None:
    api = Api()
    going = _job("Running")
    going["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:05Z"
    api.existing[going["metadata"]["name"]] = going
    ex = _executor(tmp_path, api=api)
    ex.start(fk.start(fk.toy(), "generate", KEY))
    assert ex.blocked and ex.created_jobs == 0


def test_the_image_identity_is_the_pinned_digest_when_there_is_one(tmp_path: Path) -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["image"] = "reg/stage@sha256:" + "d" * 64
    stage = validation.check(doc).spec.stages[0]
    ref, part = _executor(tmp_path).image(stage)
    assert ref.digest == "d" * 64 and part == {"digest": "d" * 64}
    _, tagged = _executor(tmp_path).image(fk.toy().spec.stages[0])
    assert tagged == {"reference": fk.toy().spec.stages[0].image}


def test_results_the_run_already_holds_are_not_read_again(tmp_path: Path, monkeypatch: Any) -> None:
    job = _job("Succeeded")
    reads: list[str] = []
    monkeypatch.setattr(cache, "read", lambda store, key: reads.append(key))
    _executor(tmp_path, {job["metadata"]["name"]: job}).observe()
    assert reads == [KEY]
    api = Api()
    settled = kube_executor.KubeExecutor(
        kube=api, settings=Settings(), pipeline=fk.toy(), store=store_mod.Store(f"file://{tmp_path}"),  # type: ignore[arg-type]
        jobs={job["metadata"]["name"]: job}, memory=kube_executor.Memory(), settled={KEY})
    (ex,) = settled.observe().values()
    assert ex.phase == "Succeeded" and reads == [KEY] and api.pod_reads == 0  # nothing read again


def test_what_was_read_of_a_finished_job_is_let_go_once_the_run_holds_it(tmp_path: Path) -> None:
    job = _job("Succeeded")
    store = store_mod.Store(f"file://{tmp_path}")
    cache.write(store, documents.CacheEntry(key=KEY, record="records/r/generate.json", outputs={"numbers": "1" * 64}))
    memory = kube_executor.Memory()
    _executor(tmp_path, {job["metadata"]["name"]: job}, memory=memory).observe()
    assert list(memory.finished) == [job["metadata"]["uid"]]
    kube_executor.KubeExecutor(
        kube=Api(), settings=Settings(), pipeline=fk.toy(), store=store,  # type: ignore[arg-type]
        jobs={job["metadata"]["name"]: job}, memory=memory, settled={KEY}).observe()
    assert not memory.finished  # an operator with thousands of finished Jobs does not keep their results
