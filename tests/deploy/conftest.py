"""Fixtures of the deployment tests (chart, images, cluster-conf).

``scenarios``: the chart rendered (helm template) with the value sets the tests cover.
``cluster``: the session's test control plane (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
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
    "board-oauth2-proxy": {
        "storage": {"defaultUrl": "s3://records/tycho", "existingSecret": "team-store"},
        "board": {"enabled": True, "existingSecret": "team-store-readonly",
                  "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
                  "oauth2Proxy": {"enabled": True, "host": "tycho.example.com", "existingSecret": "board-oauth",
                                  "oidcIssuerUrl": "https://login.example.com/realms/ml",
                                  "emailDomains": ["example.com"], "extraArgs": ["--reverse-proxy=true"]}},
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
