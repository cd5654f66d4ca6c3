"""The stage graph of a spec: edges from inputs, cycle detection, topological order, readiness.

Pure functions over ``tycho.api.models.Spec``, linear in stages + edges and without
recursion (a 10,000-stage chain is fine). Used by validation (cycles), the engine
(order, what is ready), ``explain`` and the operator.
"""

from __future__ import annotations

import heapq
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
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        todo: list[list[str]] = [list(reversed(deps.get(root, [])))]
        state[root] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and nxt in deps:
                state[nxt] = 1
                path.append(nxt)
                todo.append(list(reversed(deps[nxt])))
    return []


def order(deps: Mapping[str, list[str]]) -> list[str]:
    """Topological order, stable: among ready stages, declaration order wins."""
    position = {name: i for i, name in enumerate(deps)}
    waiting = {name: len(set(up)) for name, up in deps.items()}
    downstream: dict[str, list[str]] = {name: [] for name in deps}
    for name, up in deps.items():
        for u in set(up):
            downstream[u].append(name)
    ready = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    done: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        done.append(name)
        for d in downstream[name]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (position[d], d))
    if len(done) != len(deps):
        raise ValueError("cycle among: " + ", ".join(n for n in deps if n not in set(done)))
    return done


def ready(deps: Mapping[str, list[str]], finished: Collection[str], started: Collection[str]) -> list[str]:
    """Stages whose dependencies all finished and that have not started, in order."""
    return [n for n in order(deps) if n not in finished and n not in started and all(d in finished for d in deps[n])]
