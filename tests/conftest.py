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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-skips", action="store_true",
                     help="a skipped test fails (CI: every test must run; a missing tool is a broken setup)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """``item.rep_call`` etc.: fixtures that clean up can tell whether the test failed. With
    ``--no-skips`` a skip is reported as a failure that says why it would have skipped."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.skipped and not hasattr(rep, "wasxfail") and item.config.getoption("--no-skips"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped, but this run requires every test to run (--no-skips): {reason}"
    setattr(item, "rep_" + rep.when, rep)
