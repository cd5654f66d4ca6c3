"""The stage graph: edges from inputs, cycle detection, topological order, readiness.

Pure functions over ``tycho.api.models.Spec``; used by validation (cycles), both runners
(order, what is ready) and the operator.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tycho.api import models

Edges = dict[str, list[str]]  # stage -> stages it depends on, in declaration order


def edges(spec: models.Spec) -> Edges:
    """Dependencies of each stage, from its ``from: STAGE/OUTPUT`` inputs."""
    names = {s.name for s in spec.stages}
    deps: Edges = {}
    for stage in spec.stages:
        upstream: list[str] = []
        for inp in stage.inputs:
            if inp.from_:
                ref = inp.from_.split("/", 1)[0]
                if ref in names and ref not in upstream:
                    upstream.append(ref)
        deps[stage.name] = upstream
    return deps


def find_cycle(deps: Mapping[str, list[str]]) -> list[str]:
    """One cycle as a path that ends where it starts, or [] when the graph is a DAG."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in deps.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def order(deps: Mapping[str, list[str]]) -> list[str]:
    """Topological order, stable: among ready stages, declaration order wins."""
    done: list[str] = []
    remaining = list(deps)
    while remaining:
        ready = [n for n in remaining if all(d in done for d in deps[n])]
        if not ready:
            raise ValueError("cycle among: " + ", ".join(remaining))
        done.append(ready[0])
        remaining.remove(ready[0])
    return done


def ready(deps: Mapping[str, list[str]], finished: Collection[str], started: Collection[str]) -> list[str]:
    """Stages whose dependencies all finished and that have not started, in order."""
    return [n for n in order(deps) if n not in finished and n not in started and all(d in finished for d in deps[n])]


def upstream_closure(deps: Mapping[str, list[str]], stage: str) -> set[str]:
    """Every stage ``stage`` depends on, directly or not."""
    seen: set[str] = set()
    todo = list(deps[stage])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(deps[node])
    return seen
