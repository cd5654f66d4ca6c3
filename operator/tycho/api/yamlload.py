"""Reading a manifest's bytes into a document, safely and fast.

``tycho validate``/``run``/``explain`` read files users (or attackers) wrote, so: bytes
that are not UTF-8 are a problem at a byte offset, not a crash; the libyaml parser is used
where PyYAML has it (10,000 stages parse in a fraction of a second instead of ~9 s);
aliases may not expand the document beyond ``MAX_NODES`` (a "billion laughs" bomb,
wherever it hides, is refused before anything walks it); nesting deeper than
``MAX_DEPTH`` is refused. Every check here is iterative: no input can exhaust the stack.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 1_000_000
"""Nodes of the document with every alias expanded (a 10,000-stage manifest has ~200,000)."""
MAX_DEPTH = 200

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Unreadable(ValueError):
    """The text is not a YAML document Tycho will read; the message says why."""


def decode(data: bytes) -> str:
    """UTF-8 text (a BOM is allowed); anything else is ``Unreadable`` naming the offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise Unreadable(f"not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start}") from None


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """Nodes and depth with aliases expanded, computed over the node graph (each shared
    node once, iteratively); stops counting past the limits."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in size and not done:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not done:
            size[key] = -1  # on the path: a cycle (recursive alias) must not loop forever
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        total, deepest = 1, 0
        for c in children:
            s = size.get(id(c), 0)
            if s < 0:
                raise Unreadable("a YAML alias refers to a node that contains it (a recursive document)")
            total += s
            deepest = max(deepest, depth.get(id(c), 0))
        size[key], depth[key] = min(total, MAX_NODES + 1), deepest + 1
        if depth[key] > MAX_DEPTH:
            raise Unreadable(f"nested more than {MAX_DEPTH} levels deep")
    return size[id(root)], depth[id(root)]


def load(text: str) -> Any:
    """The document of a YAML text (None when empty); raises ``Unreadable`` or ``yaml.YAMLError``."""
    loader = Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise Unreadable(f"nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        nodes = _expanded_size(node)[0] if "&" in text else 0  # no anchor, no alias: nothing can expand
        if nodes > MAX_NODES:
            raise Unreadable(f"the document expands to more than {MAX_NODES:,} values through YAML aliases "
                             "(an alias bomb?)")
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise Unreadable(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
