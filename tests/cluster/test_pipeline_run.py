"""The toy pipeline end to end on the cluster: the operator creates one Job per stage in DAG
order, each Job's container really runs (locally, with the Job's own command and env)
against MinIO, and the operator publishes outputs, provenance, metrics and a run summary.
One run serves every test in this module; the last tests re-apply it for cache hits."""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.space import Space, drop_space, job_invocation, make_space
from tests.support.cluster import TYCHO, Cluster, Kube
from tests.support.waiting import stays, wait_for
from tycho.engine import scheduler
from tycho.kube import naming
from tycho.provenance import runs, store as store_mod

pytestmark = pytest.mark.cluster


@dataclasses.dataclass
class Run:
    space: Space
    status: dict[str, Any]
    jobs_seen: list[list[str]]  # stages with a Job, sampled before each stage was executed
    order: list[str]
    seconds: float


@pytest.fixture(scope="module")
def run(cluster: Cluster, kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    space = make_space(cluster, kube, tmp_path_factory.mktemp("toy"), "toy-run")
    started = time.monotonic()
    space.apply(space.toy())
    seen: list[list[str]] = []
    for stage in ("generate", "total", "report"):
        job = space.wait_job(stage)
        # The pass that created the Job writes the stage Running last: a downstream Job created
        # too early would exist by then.
        wait_for(functools.partial(lambda s: space.stage(s).get("phase") == "Running", stage), 30,
                 f"stage {stage} Running")
        seen.append(sorted(j["metadata"]["labels"][naming.LABEL_STAGE] for j in space.jobs()))
        proc = space.execute(job)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    status = space.wait_phase("Succeeded")
    try:
        yield Run(space, status, seen, list(space.ran), time.monotonic() - started)
    finally:
        drop_space(space)


def test_stages_get_jobs_one_at_a_time_in_dag_order(run: Run) -> None:
    assert run.order == ["generate", "total", "report"]
    assert run.jobs_seen == [["generate"], ["generate", "total"], ["generate", "report", "total"]]
    assert len(run.space.jobs()) == 3


def test_status_reports_phase_progress_outputs_provenance_and_conditions(run: Run) -> None:
    st, doc = run.status, run.space.pipeline()
    assert st["phase"] == "Succeeded" and st["progress"] == "3/3"
    assert st["observedGeneration"] == doc["metadata"]["generation"]
    assert st["headline"] == "total=20"
    assert st["runId"].startswith("toy-")
    for stage in st["stages"]:
        assert stage["phase"] == "Succeeded" and stage["cacheHit"] is False and stage["attempts"] == 1
        assert stage["jobName"] == scheduler.execution_id("toy", stage["name"], stage["cacheKey"])
        assert stage["provenance"] == f"{run.space.store}/records/{st['runId']}/{stage['name']}.json"
        assert stage["outputs"] and all(o["uri"].startswith(f"{run.space.store}/objects/sha256/")
                                        for o in stage["outputs"])
        assert stage["startedAt"] and stage["finishedAt"]
    total = next(s for s in st["stages"] if s["name"] == "total")
    assert total["metrics"] == {"running": 20.0, "total": 20.0}
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Progressing"]["status"] == "False"
    assert conds["Degraded"]["status"] == "False" and conds["Valid"]["status"] == "True"
    assert all(c["lastTransitionTime"] for c in conds.values())


def test_records_name_the_job_inputs_and_the_image_the_node_ran(run: Run) -> None:
    st = run.status
    report = next(s for s in st["stages"] if s["name"] == "report")
    record = run.space.store_json(report["provenance"])
    job = run.space.jobs("report")[0]
    meta = record["predicate"]["runDetails"]["metadata"]
    assert meta["invocationId"] == job["metadata"]["uid"]  # the Job UID, through the downward API
    deps = {d["name"]: d for d in record["predicate"]["buildDefinition"]["resolvedDependencies"]}
    total = next(s for s in st["stages"] if s["name"] == "total")
    assert deps["input:total"]["digest"]["sha256"] == total["outputs"][0]["sha256"]
    assert total["provenance"] == f"{run.space.store}/{deps['input:total']['annotations']['producer']}"
    assert deps["input:notes"]["uri"] == f"{run.space.store}/inputs/notes.txt"
    summary = runs.load(store_mod.Store(run.space.store), st["runId"])
    assert summary.phase == "Succeeded" and summary.runner.executor == "kubernetes"
    image = summary.stages["report"].image
    assert image is not None and image.digest == "ab" * 32 and image.resolved_by == "kubelet"
    assert summary.stages["total"].key_components["params"] == {"fail_marker": ""}  # type: ignore[index]
    cache = run.space.store_json(f"cache/{report['cacheKey']}.json")
    assert report["provenance"] == f"{run.space.store}/{cache['record']}"
    code = next(d for d in record["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "code")
    assert code["uri"].startswith("tycho:objects/sha256/")  # the wrapper archived the code it ran


def test_jobs_carry_the_contract_and_are_owned_by_the_pipeline(run: Run) -> None:
    doc = run.space.pipeline()
    for job in run.space.jobs():
        assert job["metadata"]["ownerReferences"][0]["uid"] == doc["metadata"]["uid"]
        labels = job["metadata"]["labels"]
        assert labels[naming.LABEL_PIPELINE] == "toy" and labels[naming.LABEL_RUN] == run.status["runId"]
        inv = job_invocation(job)
        assert inv.store == run.space.store and inv.run_id == run.status["runId"]
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["command"] == ["tycho", "stage-exec", "--phase", "publish",
                                                   "--invocation", "/etc/tycho/invocation.json"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False


def test_no_secret_value_reaches_jobs_status_events_records_or_logs(run: Run) -> None:
    secret = run.space.cluster.s3["AWS_SECRET_ACCESS_KEY"]
    sp = run.space
    texts = {
        "jobs": json.dumps(sp.jobs()),
        "status": json.dumps(sp.pipeline()),
        "events": json.dumps(sp.kube.events(sp.ns, "toy")),
        "operator log": sp.operator.logs(),
        "records": json.dumps([sp.store_json(s["provenance"]) for s in run.status["stages"]]),
        "run summary": json.dumps(sp.store_json(f"runs/{run.status['runId']}.json")),
    }
    leaked = [where for where, text in texts.items() if secret in text]
    assert not leaked


def test_every_stage_transition_is_an_event(run: Run) -> None:
    def reasons() -> list[str]:
        return [e["reason"] for e in run.space.kube.events(run.space.ns, "toy")]

    wait_for(lambda: "PipelineSucceeded" in reasons(), 10, "the PipelineSucceeded event")
    got = reasons()
    assert got.count("StageStarted") == 3 and got.count("StageSucceeded") == 3 and "RunStarted" in got


def test_metrics_endpoint_reports_reconciles_and_stages(run: Run) -> None:
    text = run.space.operator.metrics()
    assert 'tycho_stages{phase="Succeeded"} 3.0' in text
    assert "tycho_reconcile_duration_seconds_count" in text
    assert "tycho_jobs_created_total 3.0" in text


def test_tycho_runs_lists_the_cluster_run(run: Run) -> None:
    out = subprocess.run([TYCHO, "runs", "--store", run.space.store, "--json"], capture_output=True, text=True,
                         env=run.space.cluster.env(), check=True)
    rows = json.loads(out.stdout)["runs"]
    assert [(r["runId"], r["phase"], r["hits"]) for r in rows] == [(run.status["runId"], "Succeeded", 0)]


def test_the_same_pipeline_applied_again_is_all_cache_hits_and_creates_no_job(run: Run) -> None:
    sp = run.space
    # Re-applying the unchanged manifest is a no-op (same generation, nothing to do).
    before = sp.pipeline()
    sp.kube.patch_spec(sp.ns, "toy", sp.toy()["spec"])
    after = sp.pipeline()
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["status"] == before["status"]
    # The same pipeline under another name (new object, new run): every stage is a hit.
    sp.apply(sp.toy(name="toy-again"))
    st = sp.wait_phase("Succeeded", name="toy-again")
    assert [s["phase"] for s in st["stages"]] == ["Cached"] * 3
    assert all(s["cacheHit"] is True and "jobName" not in s for s in st["stages"])
    assert st["runId"] != run.status["runId"]
    assert [s["provenance"] for s in st["stages"]] == [s["provenance"] for s in run.status["stages"]]
    assert not [j for j in sp.jobs() if j["metadata"]["labels"][naming.LABEL_PIPELINE] == "toy-again"]
    reasons = wait_for(lambda: (r := [e["reason"] for e in sp.kube.events(sp.ns, "toy-again")]).count("StageCached")
                       == 3 and r, 10, "three StageCached events")
    assert "StageStarted" not in reasons
    assert "tycho_cache_hits_total 3.0" in sp.operator.metrics()


def test_a_cluster_run_reproduces_bit_for_bit_on_this_machine(run: Run, tmp_path: Path) -> None:
    out = subprocess.run([TYCHO, "reproduce", run.status["runId"], "--store", run.space.store, "--json"],
                         capture_output=True, text=True, env=run.space.cluster.env(), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["identical"] is True and len(report["outputs"]) == 3
    new = runs.load(store_mod.Store(run.space.store), report["reproductionRunId"])
    assert new.reproduces == run.status["runId"] and new.runner.executor == "subprocess"


def test_a_cluster_run_reproduces_as_jobs_on_the_cluster(run: Run) -> None:
    sp = run.space
    proc = subprocess.Popen([TYCHO, "reproduce", run.status["runId"], "--store", sp.store, "--on-cluster", "--json",
                             "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=sp.cluster.env())
    try:
        def reproduction() -> str | None:
            docs = sp.kube._call("GET", sp.kube.pipelines(sp.ns))["items"]
            return next((d["metadata"]["name"] for d in docs
                         if d["metadata"].get("annotations", {}).get(naming.ANNOTATION_REPRODUCES)), None)

        name = wait_for(reproduction, 30, "the reproduction's ExperimentPipeline")
        status = sp.drive(name, timeout=90)
        assert status["phase"] == "Succeeded"
        assert all(s["phase"] == "Succeeded" for s in status["stages"])  # cache ignored: everything ran
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    report = json.loads(out)
    assert report["identical"] is True and report["reproductionRunId"] == status["runId"]


def test_an_operator_restarted_on_a_finished_pipeline_makes_no_api_call(run: Run) -> None:
    sp = run.space
    sp.operator.kill(signal.SIGTERM)
    sp.operator.start()
    sp.operator.wait_passes(2)  # it lists pipelines and Jobs, and reconciles each pipeline once: toy, toy-again
    stays(lambda: sp.operator.counted("tycho_api_calls_total") == 0, 3, "no API call by the idle passes")
