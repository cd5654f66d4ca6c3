"""Playing kubelet for stage pods whose node runs no code (kwok): the one home of how a
stage pod is run in a kubelet's stead. The cluster tests (``tests/cluster/space.py``, one
process per container), the fast kubelet (``tests/cluster/fastlet.py``, a pool of worker
processes) and the operator benchmark's harness (``benchmarks/scale_harness.py``, the
user's code replaced) all build a container's environment, pick its phase and run the
phases through here.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.cluster import Kube
    from tycho.stage import invocation, work as work_mod

Container = tuple[str, str, dict[str, str]]
"""A container to run: its name, the ``tycho stage-exec --phase`` it runs, its environment."""
Ended = list[tuple[str, int, str]]
"""The containers that ran, in order: name, exit code, what it printed."""
RunPhase = Callable[["invocation.Invocation", "work_mod.Work"], bool]
"""What stands in for the run phase (the user's code): True when it succeeded."""


def container_env(kube: Kube, ns: str, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """One container's environment as a kubelet builds it: its own entries only, Secret
    references read from the API server, field references from the pod."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = kube.secret(ns, ref["name"])
            if ref["key"] in data:
                env[item["name"]] = data[ref["key"]]
            elif not ref.get("optional"):
                raise AssertionError(f"secret {ref['name']} has no key {ref['key']}")
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path == "spec.nodeName":
                env[item["name"]] = pod["spec"].get("nodeName", "")
                continue
            assert path.startswith("metadata.labels['"), path
            env[item["name"]] = pod["metadata"]["labels"][path[len("metadata.labels['"):-2]]
    return env


def phase(container: dict[str, Any]) -> str:
    """Which phase of ``tycho stage-exec`` a stage pod's container runs."""
    command: list[str] = container["command"]
    return command[command.index("--phase") + 1]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """A pod's containers in the order a kubelet starts them: init containers, then the rest."""
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def run_phases(ran: Sequence[Container], code_dir: str, run: RunPhase | None = None) -> Ended:
    """Run a pod's containers in this process, in order, until one fails: each phase with
    exactly its container's environment (``TYCHO_SIGNING_KEY_PEM``: the signing key's
    content, written to a file as the pod's Secret volume would be), sharing one work
    directory as the pod's volumes do. ``run`` replaces the run phase (the user's code)."""
    from tycho.provenance import store as store_mod
    from tycho.stage import fetch as fetch_mod, invocation, publish as publish_mod, supervise, work as work_mod

    root = Path(tempfile.mkdtemp(prefix="tycho-fastpod-"))
    out: Ended = []
    saved = dict(os.environ)
    try:
        for name, which, env in ran:
            os.environ.clear()
            os.environ.update(env, TYCHO_WORK=str(root / "stage"), TYCHO_CODE_DIR=code_dir, HOME=str(root))
            if "TYCHO_SIGNING_KEY_PEM" in env:
                key = root / "signing.key"
                key.write_text(env["TYCHO_SIGNING_KEY_PEM"])
                os.environ["TYCHO_SIGNING_KEY"] = str(key)
            inv = invocation.Invocation.model_validate_json(env["TYCHO_INVOCATION"])
            work = work_mod.Work(root / "stage")
            log = io.StringIO()
            code = 0
            try:
                with contextlib.redirect_stdout(log):
                    if which == "live":
                        pass  # the live-metrics sidecar: nothing to show this kubelet's readers
                    elif which == "fetch":
                        fetch_mod.fetch(inv, store_mod.Store(inv.store), work)
                    elif which == "run":
                        code = 0 if (run(inv, work) if run else supervise.run(inv, work, print)) else 1
                    else:
                        publish_mod.publish(inv, store_mod.Store(inv.store), work, print)
            except Exception as err:  # noqa: BLE001 - a container that failed, as its exit code says
                log.write(f"[tycho] {type(err).__name__}: {err}\n")
                code = 1
            out.append((name, code, log.getvalue()))
            if code:
                break
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
    return out
