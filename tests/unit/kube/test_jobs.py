"""The stage Job manifest: what the pod runs, where it may run, and that no secret leaks."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.kube import kubefakes as fk
from tycho.api import models, validation
from tycho.kube import jobs, naming
from tycho.settings import Settings

KEY = "0123456789abcdef" * 4


def _job(pipeline: models.ExperimentPipeline | None = None, stage: str = "generate",
         settings: Settings | None = None) -> dict[str, Any]:
    pipeline = pipeline or fk.toy()
    return jobs.build_job(pipeline=pipeline, start=fk.start(pipeline, stage, KEY), settings=settings or Settings())


def _containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod["initContainers"], *pod["containers"]]}


def _container(job: dict[str, Any], name: str = "stage") -> dict[str, Any]:
    """A container of the stage pod (default: the one that runs the user's code)."""
    return _containers(job)[name]


def test_job_name_is_pipeline_stage_and_ten_hex_digits_of_the_key() -> None:
    assert _job()["metadata"]["name"] == "toy-generate-0123456789"


def test_job_is_labelled_for_pipeline_stage_run_and_key_and_owned_by_the_pipeline() -> None:
    job = _job()
    labels = job["metadata"]["labels"]
    assert labels[naming.LABEL_PIPELINE] == "toy" and labels[naming.LABEL_STAGE] == "generate"
    assert labels[naming.LABEL_RUN] == fk.RUN
    assert KEY.startswith(labels[naming.LABEL_KEY]) and len(labels[naming.LABEL_KEY]) <= 63
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["annotations"][naming.ANNOTATION_KEY] == KEY
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline", "name": "toy",
                     "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}


def test_containers_run_the_stage_wrapper_on_the_invocation_the_pod_carries_once() -> None:
    job = _job(stage="report")
    c = _container(job)
    init = job["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["fetch", "live", "stage"]
    assert [c.get("restartPolicy") for c in init] == [None, "Always", None]  # live is a native sidecar
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["publish"]
    assert {n: c["command"] for n, c in _containers(job).items()} == {
        n: ["tycho", "stage-exec", "--phase", p, "--invocation", "/etc/tycho/invocation.json"]
        for n, p in (("fetch", "fetch"), ("live", "live"), ("stage", "run"), ("publish", "publish"))}
    live = _containers(job)["live"]
    assert {m["mountPath"]: m.get("readOnly", False) for m in live["volumeMounts"]} == {
        "/stage/out": True, "/tmp": False, "/etc/tycho": True}
    # one copy, in the pod's annotations, read through a downward API file (not in four envs)
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if "downwardAPI" in v]
    assert volume["downwardAPI"]["items"] == [{"path": "invocation.json", "fieldRef": {
        "fieldPath": f"metadata.annotations['{naming.ANNOTATION_INVOCATION}']"}}]
    assert all(m["name"] == volume["name"] and m["readOnly"] for c in _containers(job).values()
               for m in c["volumeMounts"] if m["mountPath"] == "/etc/tycho")
    assert json.dumps(job).count("cache_key") == 1
    assert c["workingDir"] == "/app/pipeline"
    inv = fk.invocation_of(job)
    assert inv.stage == "report" and inv.cache_key == KEY and inv.store == fk.STORE
    assert inv.attempts == 1  # retries are new pods (Job backoffLimit), not in-pod loops
    assert {i.name: i.sha256 for i in inv.inputs} == {"total": "b" * 64, "notes": "b" * 64}
    assert inv.inputs[0].url is None and inv.inputs[1].url == fk.NOTES_URL  # store objects by digest
    assert inv.executor == "kubernetes" and inv.workdir == "/app/pipeline"
    env = {e["name"]: e for e in c["env"]}
    assert env["TYCHO_INVOCATION_ID"]["valueFrom"]["fieldRef"]["fieldPath"].endswith("controller-uid']")


def test_store_credentials_reach_only_the_fetch_and_publish_containers() -> None:
    job = _job()
    stage = _container(job)
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "TYCHO_SIGNING_KEY"} & {
        e["name"] for e in stage["env"]}
    assert {m["name"] for m in stage["volumeMounts"]} == {"in", "out", "tmp", "invocation"}
    assert {"name": "in", "mountPath": "/stage/in", "readOnly": True} in stage["volumeMounts"]
    assert not any("secret" in v for v in job["spec"]["template"]["spec"]["volumes"])  # no signing Secret unless set
    c = _container(job, "publish")
    assert {m["name"] for m in c["volumeMounts"]} == {"out", "state", "io-tmp", "invocation"}
    env = {e["name"]: e for e in c["env"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": "store-creds", "key": name}}}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert "SECRET" not in job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION]


def test_operator_wide_secret_is_used_when_the_pipeline_names_none() -> None:
    doc = fk.toy_doc()
    doc["spec"]["storage"] = {"url": fk.STORE}
    job = _job(validation.check(doc), settings=Settings(store_secret="cluster-store"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in _container(job, "fetch")["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"cluster-store"}


def test_the_signing_key_is_mounted_into_the_publish_container_only() -> None:
    job = _job(settings=Settings(signing_secret="tycho-signing"))
    pod = job["spec"]["template"]["spec"]
    assert {"name": "signing", "secret": {"secretName": "tycho-signing", "defaultMode": 0o440}} in pod["volumes"]
    mounted = {n for n, c in _containers(job).items() if any(m["name"] == "signing" for m in c["volumeMounts"])}
    assert mounted == {"publish"}
    env = {e["name"]: e.get("value") for e in _container(job, "publish")["env"]}
    assert env["TYCHO_SIGNING_KEY"] == "/var/run/tycho/signing/signing.key"


def test_secret_backed_stage_env_is_a_secret_key_ref_and_stays_out_of_the_invocation() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["env"] = [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
        {"name": "MODE", "value": "fast"}]
    job = _job(validation.check(doc))
    env = {e["name"]: e for e in _container(job)["env"]}
    assert env["API_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "tok", "key": "t"}}
    inv = fk.invocation_of(job)
    assert inv.secret_env == ["API_TOKEN"] and inv.env == {"MODE": "fast"}


def test_pod_is_locked_down() -> None:
    pod = _job()["spec"]["template"]["spec"]
    c = _container(_job())
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]


def test_retries_timeout_and_ttl_map_onto_the_job() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][1]["timeoutSeconds"] = 120
    job = _job(validation.check(doc), stage="total", settings=Settings(job_ttl_seconds=77))
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["ttlSecondsAfterFinished"] == 77
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 120  # per attempt (pod), not per Job


def test_cpu_stage_gets_requests_equal_to_limits_and_no_gpu_placement() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["resources"] = {"cpu": "500m", "memory": "256Mi"}
    pod = _job(validation.check(doc))["spec"]["template"]["spec"]
    res = next(c for c in pod["initContainers"] if c["name"] == "stage")["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert "tolerations" not in pod and "nodeSelector" not in pod


def test_gpu_stage_asks_for_gpus_on_the_right_product_and_tolerates_the_gpu_taint() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["resources"] = {"cpu": 2, "memory": "4Gi", "gpu": {"count": 1, "type": "NVIDIA-A10"}}
    doc["spec"]["stages"][0]["nodeSelector"] = {"tycho.dev/pool": "gpu"}
    pod = _job(validation.check(doc))["spec"]["template"]["spec"]
    res = next(c for c in pod["initContainers"] if c["name"] == "stage")["resources"]
    assert res["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert "nvidia.com/gpu" not in res["requests"]
    assert pod["nodeSelector"] == {"tycho.dev/pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-A10"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_requests_can_differ_from_limits_and_a_stage_can_name_its_service_account() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["resources"] = {"requests": {"cpu": "250m", "memory": "1Gi"},
                                             "limits": {"cpu": 2, "memory": "2Gi"}}
    doc["spec"]["stages"][0]["serviceAccountName"] = "trainer"
    pod = _job(validation.check(doc))["spec"]["template"]["spec"]
    assert next(c for c in pod["initContainers"] if c["name"] == "stage")["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert pod["serviceAccountName"] == "trainer" and pod["automountServiceAccountToken"] is False
    assert _job()["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_image_pinned_by_digest_is_recorded_as_resolved() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["image"] = "reg/stage@sha256:" + "d" * 64
    inv = fk.invocation_of(_job(validation.check(doc)))
    assert inv.image.digest == "d" * 64 and inv.image.resolved_by == "image-reference"


def test_invocation_json_round_trips() -> None:
    job = _job()
    raw = job["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_INVOCATION]
    assert json.loads(raw)["cache_key"] == KEY


def test_default_store_replaces_the_local_default_url() -> None:
    doc = fk.toy_doc()
    doc["spec"]["storage"] = {}
    spec = validation.check(doc).spec
    assert jobs.store_url(spec, Settings(default_store="s3://cluster/store")) == "s3://cluster/store"
    assert jobs.store_url(fk.toy().spec, Settings(default_store="s3://cluster/store")) == fk.STORE


def test_a_stage_that_declares_network_is_labelled_for_the_network_policy() -> None:
    doc = fk.toy_doc()
    doc["spec"]["stages"][0]["network"] = True
    job = _job(validation.check(doc))
    assert job["spec"]["template"]["metadata"]["labels"][naming.LABEL_NETWORK] == "true"
    assert naming.LABEL_NETWORK not in _job()["spec"]["template"]["metadata"]["labels"]


def test_secret_values_are_masked_in_what_the_stage_prints() -> None:
    from tycho.stage import supervise

    assert supervise.mask("token=s3cr3t-value and s3cr3t-value", ["s3cr3t-value"]) == "token=*** and ***"
