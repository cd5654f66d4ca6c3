"""The few calls the operator makes to the API server, on plain dicts.

Thin on purpose: everything worth testing is decided by the pure modules; this module
only sends it. It rides on the kubernetes client's configuration and connection pool
(kubeconfig or in-cluster service account) but skips its model classes: the operator
works with JSON as the API server sends it, which keeps the builders plain and fast.
Only this module and the watch handlers talk to the API server.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kubernetes import client as k8s, config as k8s_config

from tycho.api import models
from tycho.kube import naming

PIPELINES = f"/apis/{models.GROUP}/{models.VERSION}/namespaces/{{ns}}/{models.PLURAL}"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
TIMEOUT = 30


class ApiError(Exception):
    """A non-2xx answer; ``status`` is the HTTP code (409 conflict, 404 not found, ...)."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        try:
            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            message = body
        super().__init__(f"HTTP {status}: {message}")


def api_client(pool_size: int = 16) -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        # Read $KUBECONFIG now: the library captures it at import time only.
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return k8s.ApiClient(cfg)


class Kube:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api

    def _call(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Any = None,
              content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        m, url, h, b, _ = self.api.param_serialize(method, path, query_params=query, header_params=headers,
                                                   body=body, auth_settings=["BearerToken"])
        resp = self.api.call_api(m, url, header_params=h, body=b, _request_timeout=TIMEOUT)
        data = resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, data.decode(errors="replace") if isinstance(data, bytes) else str(data))
        return json.loads(data) if data else None

    # ---- pipelines -----------------------------------------------------------------
    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when it does not exist (404), other errors raise."""
        try:
            doc: dict[str, Any] = self._call("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return doc

    def get_pipeline(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{PIPELINES.format(ns=ns)}/{name}")

    def replace_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        """Write the whole status (a JSON patch ``add`` replaces it, present or not)."""
        self._call("PATCH", f"{PIPELINES.format(ns=ns)}/{name}/status",
                   body=[{"op": "add", "path": "/status", "value": status}],
                   content_type="application/json-patch+json")

    # ---- jobs ------------------------------------------------------------------------
    def list_jobs(self, ns: str, pipeline: str, uid: str) -> dict[str, dict[str, Any]]:
        """The pipeline's Jobs by name (labelled with its name AND owned by this uid: a
        deleted pipeline's Jobs awaiting garbage collection are not the new one's)."""
        doc = self._call("GET", JOBS.format(ns=ns), query=[("labelSelector", naming.pipeline_selector(pipeline))])
        return {j["metadata"]["name"]: j for j in doc.get("items", []) if naming.owned_by(j, uid)}

    def get_job(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"{JOBS.format(ns=ns)}/{name}")

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """Create a Job: (the Job, True), or on 409 (the existing Job or None, False) so the
        caller adopts it (same owner) or waits for it to go (a deleted pipeline's Job)."""
        ns = manifest["metadata"]["namespace"]
        try:
            created: dict[str, Any] = self._call("POST", JOBS.format(ns=ns), body=manifest)
            return created, True
        except ApiError as err:
            if err.status != 409:
                raise
        return self.get_job(ns, manifest["metadata"]["name"]), False

    def delete_job(self, ns: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; already gone is fine."""
        try:
            self._call("DELETE", f"{JOBS.format(ns=ns)}/{name}",
                       body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        except ApiError as err:
            if err.status != 404:
                raise

    def job_pods(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        ns, uid = job["metadata"]["namespace"], job["metadata"]["uid"]
        selector = f"batch.kubernetes.io/controller-uid={uid}"
        doc = self._call("GET", PODS.format(ns=ns), query=[("labelSelector", selector)])
        items: list[dict[str, Any]] = doc.get("items", [])
        return items
