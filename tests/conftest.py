"""Shared test setup: the package lives under operator/ (installed editable by `make test`).

``cluster`` and ``kube`` are the session's one test control plane (tests/support/cluster.py):
every suite that needs a cluster (cluster, deploy, node, board) shares it, started on
first use unless one is live, stopped at the end only if this session started it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import cluster as cluster_mod


@pytest.fixture(scope="session")
def cluster() -> Iterator[cluster_mod.Cluster]:
    with cluster_mod.running() as running:
        yield running


@pytest.fixture(scope="session")
def kube(cluster: cluster_mod.Cluster) -> cluster_mod.Kube:
    from tycho.kube import client

    return cluster_mod.Kube(client.api_client())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """``item.rep_call`` etc.: fixtures that clean up can tell whether the test failed."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)
