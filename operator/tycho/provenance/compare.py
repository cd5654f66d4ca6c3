"""How far apart two stored outputs are: the number of bytes that differ.

Used by ``tycho reproduce`` when a re-derived output is not bit-identical: "3 of 40,960
bytes differ" tells a float-summation-order difference from a different model. Files are
compared position by position (plus the difference in length); trees file by file, by
path (a file only one side has counts whole).
"""

from __future__ import annotations

import dataclasses

from tycho.provenance import hashing, layout, store as store_mod, tree

_CHUNK = hashing.CHUNK


@dataclasses.dataclass(frozen=True)
class Distance:
    differing: int
    """Bytes that differ (positions that differ, plus the difference in length)."""
    size_a: int
    size_b: int


def _blob(store: store_mod.Store, a: str, b: str) -> Distance:
    differing = size_a = size_b = 0
    with store.fs.open(store._path(layout.object_rel(a)), "rb") as fa, \
            store.fs.open(store._path(layout.object_rel(b)), "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if not ca and not cb:
                break
            size_a, size_b = size_a + len(ca), size_b + len(cb)
            n = min(len(ca), len(cb))
            if ca[:n] != cb[:n]:
                differing += sum(x != y for x, y in zip(ca[:n], cb[:n]))
            differing += abs(len(ca) - len(cb))
    return Distance(differing, size_a, size_b)


def distance(store: store_mod.Store, a: str, b: str, directory: bool = False) -> Distance:
    """Bytes differing between objects ``a`` and ``b`` (sha256 digests) of one store."""
    if a == b:
        size = tree_size(store, a) if directory else int(store.fs.size(store._path(layout.object_rel(a))))
        return Distance(0, size, size)
    if not directory:
        return _blob(store, a, b)
    left = {e.path: e for e in tree.load(store, a).entries}
    right = {e.path: e for e in tree.load(store, b).entries}
    differing = 0
    for path in set(left) | set(right):
        x, y = left.get(path), right.get(path)
        if x is None or y is None:
            differing += (x or y).size  # type: ignore[union-attr]
        elif x.sha256 != y.sha256:
            differing += _blob(store, x.sha256, y.sha256).differing
    return Distance(differing, sum(e.size for e in left.values()), sum(e.size for e in right.values()))


def tree_size(store: store_mod.Store, digest: str) -> int:
    return sum(e.size for e in tree.load(store, digest).entries)
