"""Layered layout of small DAGs for the board's SVG pictures: the stage graph of a run
(state and cache hits per stage) and the lineage graph (stage executions back to raw data).

Pure: nodes and edges in, positioned nodes and edge paths out; templates draw them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pydantic

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 46, 60, 18, 10


class Node(pydantic.BaseModel):
    id: str
    label: str
    sub: str = ""
    """A second line (state, digest)."""
    kind: str = ""
    """CSS class: a stage phase, ``raw``, ``record``."""
    href: str = ""
    x: float = 0
    y: float = 0


class Edge(pydantic.BaseModel):
    source: str
    target: str
    path: str = ""


class Layout(pydantic.BaseModel):
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    node_w: int = NODE_W
    node_h: int = NODE_H


def layout(nodes: Sequence[Node], parents: Mapping[str, Sequence[str]]) -> Layout:
    """Columns by longest path from a source (parents on the left); order kept within a column."""
    ids = [n.id for n in nodes]
    depth: dict[str, int] = {}

    def level(node: str, trail: frozenset[str] = frozenset()) -> int:
        if node in depth:
            return depth[node]
        ups = [p for p in parents.get(node, []) if p in ids and p not in trail]
        depth[node] = 0 if not ups else 1 + max(level(p, trail | {node}) for p in ups)
        return depth[node]

    for n in ids:
        level(n)
    columns: dict[int, list[str]] = {}
    for n in ids:
        columns.setdefault(depth[n], []).append(n)
    tallest = max((len(c) for c in columns.values()), default=1)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y
    placed: dict[str, Node] = {}
    for col, members in columns.items():
        span = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = (height - span) / 2
        for i, n in enumerate(members):
            node = next(x for x in nodes if x.id == n)
            placed[n] = node.model_copy(update={"x": PAD + col * (NODE_W + GAP_X), "y": top + i * (NODE_H + GAP_Y)})
    edges: list[Edge] = []
    for child, ups in parents.items():
        for parent in ups:
            if parent in placed and child in placed:
                a, b = placed[parent], placed[child]
                x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
                x2, y2 = b.x, b.y + NODE_H / 2
                mid = (x1 + x2) / 2
                edges.append(Edge(source=parent, target=child,
                                  path=f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"))
    width = PAD * 2 + (max(columns, default=0) + 1) * NODE_W + max(columns, default=0) * GAP_X
    return Layout(nodes=[placed[n] for n in ids], edges=edges, width=width, height=height)
