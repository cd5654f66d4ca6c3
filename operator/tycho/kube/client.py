"""The few calls the operator makes to the API server, on plain dicts.

Thin on purpose: everything worth testing is decided by the pure modules; this module
only sends it. The operator reads pipelines through kopf's watch and Jobs through the Job
informer (``tycho.kube.informer``: the one LIST and WATCH here), so a reconcile calls this
module only to write: create and delete Jobs, replace a pipeline's status, and read a
finished Job's pods once. It rides on the kubernetes client's configuration and connection pool
(kubeconfig or in-cluster service account) but skips its model classes: the operator
works with JSON as the API server sends it, which keeps the builders plain and fast.
Only this module and the watch handlers talk to the API server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client as k8s, config as k8s_config

from tycho.api import models

PIPELINES = f"/apis/{models.GROUP}/{models.VERSION}/namespaces/{{ns}}/{models.PLURAL}"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
ALL_JOBS = "/apis/batch/v1/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
TIMEOUT = 30
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


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
    def __init__(self, api: k8s.ApiClient, on_call: Callable[[str], None] | None = None) -> None:
        """``on_call(verb)`` is told of every request (the operator counts them)."""
        self.api = api
        self.on_call = on_call or (lambda verb: None)

    def _call(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Any = None,
              content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        m, url, h, b, _ = self.api.param_serialize(method, path, query_params=query, header_params=headers,
                                                   body=body, auth_settings=["BearerToken"])
        self.on_call(method)
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

    def create_pipeline(self, doc: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._call("POST", PIPELINES.format(ns=doc["metadata"]["namespace"]), body=doc)
        return created

    def replace_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        """Write the whole status (a JSON patch ``add`` replaces it, present or not)."""
        self._call("PATCH", f"{PIPELINES.format(ns=ns)}/{name}/status",
                   body=[{"op": "add", "path": "/status", "value": status}],
                   content_type="application/json-patch+json")

    # ---- jobs ------------------------------------------------------------------------
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

    def list_jobs(self, ns: str | None, selector: str, limit: int, token: str = "") -> dict[str, Any]:
        """One page of the Jobs matching ``selector`` in ``ns`` (None: every namespace)."""
        query = [("labelSelector", selector), ("limit", str(limit))] + ([("continue", token)] if token else [])
        page: dict[str, Any] = self._call("GET", JOBS.format(ns=ns) if ns else ALL_JOBS, query=query)
        return page

    def watch_jobs(self, ns: str | None, selector: str, version: str, seconds: int) -> Iterator[dict[str, Any]]:
        """The watch events of the Jobs matching ``selector`` after ``version``, until the server
        ends the watch (after about ``seconds``); a 410 answer means ``version`` is too old."""
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("labelSelector", selector),
                 ("resourceVersion", version), ("timeoutSeconds", str(seconds))]
        m, url, h, b, _ = self.api.param_serialize("GET", JOBS.format(ns=ns) if ns else ALL_JOBS, query_params=query,
                                                   header_params={"Accept": "application/json"},
                                                   auth_settings=["BearerToken"])
        self.on_call("WATCH")
        resp = self.api.call_api(m, url, header_params=h, _request_timeout=(TIMEOUT, seconds + TIMEOUT))
        if not 200 <= resp.status < 300:
            data = resp.read()  # type: ignore[no-untyped-call]
            raise ApiError(resp.status, data.decode(errors="replace") if isinstance(data, bytes) else str(data))
        ended = False
        try:
            for line in resp.response:
                if line.strip():
                    yield json.loads(line)
            ended = True
        finally:  # a watch left before the server ended it cannot go back to the pool
            resp.response.release_conn() if ended else resp.response.close()

    def delete_job(self, ns: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; already gone is fine."""
        try:
            self._call("DELETE", f"{JOBS.format(ns=ns)}/{name}",
                       body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        except ApiError as err:
            if err.status != 404:
                raise

    # ---- events -----------------------------------------------------------------------
    def post_event(self, event: dict[str, Any]) -> None:
        self._call("POST", f"/api/v1/namespaces/{event['metadata']['namespace']}/events", body=event)

    # ---- pods -------------------------------------------------------------------------
    def job_pods(self, ns: str, job_uid: str) -> list[dict[str, Any]]:
        """The pods of one Job (read once per finished Job: why it failed, what image it ran)."""
        doc = self._call("GET", PODS.format(ns=ns), query=[("labelSelector", f"{JOB_UID_LABEL}={job_uid}")])
        items: list[dict[str, Any]] = doc.get("items", [])
        return items

    def pod_log(self, ns: str, pod: str, tail_lines: int = 200) -> str:
        """The last lines a pod's stage container printed."""
        m, url, h, b, _ = self.api.param_serialize(
            "GET", f"{PODS.format(ns=ns)}/{pod}/log",
            query_params=[("tailLines", str(tail_lines)), ("container", "stage")],
            header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"])
        self.on_call("GET")
        resp = self.api.call_api(m, url, header_params=h, body=b, _request_timeout=TIMEOUT)
        data = resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, data.decode(errors="replace") if isinstance(data, bytes) else str(data))
        return data.decode(errors="replace") if isinstance(data, bytes) else str(data)
