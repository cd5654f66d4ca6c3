"""Cluster tests: a real control plane (the session's ``cluster``, tests/conftest.py) and
the operator as a subprocess. ``space``: a fresh namespace with the store Secret and an
operator watching only it (tests/cluster/space.py says what a test can do with it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.space import Space, drop_space, make_space
from tests.support.cluster import Cluster, Kube

pytestmark = pytest.mark.cluster


@pytest.fixture
def space(cluster: Cluster, kube: Kube, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Space]:
    sp = make_space(cluster, kube, tmp_path, request.node.name.replace("_", "-")[5:25].strip("-").lower())
    try:
        yield sp
    finally:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(f"---- operator log ({sp.ns}) ----\n{sp.operator.logs()[-6000:]}")
        drop_space(sp)
