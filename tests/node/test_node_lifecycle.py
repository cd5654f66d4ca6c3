"""Stopping the real node gives the machine back as it was: kubelet and containerd change
machine-wide state (sysctls, cgroups, mounts, directories, a bridge), and `node.sh down`
undoes all of it; `node.sh up` then joins the node again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import NODE_DIR, RealNode

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

LEFT_BEHIND = [Path("/var/lib/kubelet"), Path("/var/log/pods"), Path("/run/tycho-node"), NODE_DIR,
               Path("/var/lib/cni/networks/tycho")]


def sysctl(key: str) -> str:
    return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, check=True).stdout.strip()


def mounts_under(*prefixes: str) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [m for m in points if m.startswith(prefixes)]


def test_node_down_restores_the_machine_and_up_joins_it_again(real_node: RealNode) -> None:
    original = dict(line.split() for line in (NODE_DIR / "sysctl.orig").read_text().splitlines())
    assert sysctl("vm.overcommit_memory") == "1", "kubelet sets it while it runs"
    assert mounts_under("/var/lib/kubelet"), "kubelet bind-mounts its root dir while it runs"
    assert list(Path("/sys/fs/cgroup").glob("*/kubepods"))

    real_node._script("down")
    try:
        assert {key: sysctl(key) for key in original} == original
        assert [p for p in LEFT_BEHIND if p.exists()] == []
        assert mounts_under("/var/lib/kubelet", "/run/tycho-node", "/run/netns/cni-", "/var/run/netns/cni-") == []
        assert list(Path("/sys/fs/cgroup").glob("*/kubepods")) == []
        assert subprocess.run(["ip", "link", "show", "tycho0"], capture_output=True).returncode != 0
        procs = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=True).stdout
        assert "/run/tycho-node/containerd.sock" not in procs, "containerd and its shims are gone"
        assert real_node.kubectl("get", "node", real_node.name, check=False).returncode != 0, "node object deleted"
    finally:
        real_node._script("up")
    node = json.loads(real_node.kubectl("get", "node", real_node.name, "-o", "json").stdout)
    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]
    assert node["spec"]["taints"] == [{"key": "tycho.dev/real-node", "value": "true", "effect": "NoSchedule"}]
