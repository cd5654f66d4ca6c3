"""Fixtures of the deployment tests (chart, images, cluster-conf).

``scenarios``: the chart rendered (helm template) with the value sets the tests cover.
``cluster``: the live test control plane. The fixture of tests/cluster/conftest.py is
reused when it loads (it starts the control plane unless one is live, and stops it at
the end only if it started it); if that module cannot be loaded, a fallback uses
.cluster/kubeconfig when the cluster is live and skips otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import _support as s

# Value sets rendered by the tests: name -> values (as a user would write them).
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "cluster-wide": {
        "extraPipelineNamespaces": ["ml"],
        "storage": {"defaultUrl": "s3://records/tycho",
                    "secret": {"create": True, "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "not-a-secret",
                               "endpointUrl": "https://s3.example.com"}},
    },
    "namespaced": {
        "watchNamespaces": ["ml-a", "ml-b"],
        "storage": {"existingSecret": "team-store", "defaultUrl": "s3://records/tycho"},
        "peering": {"enabled": True},
        "operator": {"replicas": 2},
    },
    "board": {
        "storage": {"defaultUrl": "s3://records/tycho", "existingSecret": "team-store"},
        "board": {"enabled": True, "existingSecret": "team-store-readonly"},
    },
    "peering-monitoring-minio": {
        "peering": {"enabled": True},
        "operator": {"replicas": 2},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "minio": {"enabled": True, "rootPassword": "quick-start-only"},
    },
}


@dataclasses.dataclass
class Scenario:
    name: str
    values: dict[str, Any]
    values_path: Path
    objects: list[dict[str, Any]]


@pytest.fixture(scope="session")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scenario]:
    directory = tmp_path_factory.mktemp("values")
    out = {}
    for name, values in SCENARIOS.items():
        path = s.values_file(values, directory, name)
        out[name] = Scenario(name, values, path, s.render(path))
    return out


# ---- cluster ------------------------------------------------------------------------------

@dataclasses.dataclass
class LiveCluster:
    kubeconfig: Path


def _load_cluster_conftest() -> Any:
    path = s.REPO / "tests" / "cluster" / "conftest.py"
    if not path.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location("tycho_tests_cluster_conftest", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, "cluster", None)
    except Exception:  # noqa: BLE001 - any import problem: fall back to the small fixture
        return None


_shared_cluster = _load_cluster_conftest()

if _shared_cluster is not None:
    cluster = _shared_cluster
else:
    @pytest.fixture(scope="session")
    def cluster() -> Iterator[LiveCluster]:
        state = Path(os.environ.get("TYCHO_CLUSTER_DIR", s.REPO / ".cluster"))
        kubeconfig = state / "kubeconfig"
        if not kubeconfig.is_file():
            pytest.skip("no test cluster: start it with `bash tests/cluster/up.sh`")
        probe = subprocess.run([s.kubectl(), "--kubeconfig", str(kubeconfig),
                                "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=20)
        if probe.returncode != 0:
            pytest.skip(f"the test cluster at {kubeconfig} is not live: {probe.stderr.strip()[:200]}")
        yield LiveCluster(kubeconfig)
