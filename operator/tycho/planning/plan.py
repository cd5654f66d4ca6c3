"""Decides, for each stage, whether it is a cache hit, must run, or waits, and why.

Pure: the caller supplies what it knows (outputs of finished stages, digests of external
inputs, the code digest, image identities) and a ``lookup`` that returns the cache entry
for a key, already verified against the store. Both runners and ``tycho explain`` use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

from tycho.api import models
from tycho.planning import cachekey, dag


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """What a cache hit reuses: the recorded outputs and the record that produced them."""

    key: str
    outputs: dict[str, str]  # output name -> sha256
    record: str  # URI of the provenance record
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Decision:
    stage: str
    action: Literal["hit", "run", "wait"]
    reason: str
    key: str | None = None
    components: dict[str, Any] | None = None
    input_digests: dict[str, str] = dataclasses.field(default_factory=dict)
    cached: CacheEntry | None = None


Lookup = Callable[[str], CacheEntry | None]


def input_digests(stage: models.Stage, outputs: Mapping[str, Mapping[str, str]],
                  external: Mapping[str, str]) -> dict[str, str] | None:
    """sha256 of each input, or None while an upstream output is not known yet."""
    found: dict[str, str] = {}
    for inp in stage.inputs:
        if inp.from_:
            ref_stage, _, ref_out = inp.from_.partition("/")
            digest = outputs.get(ref_stage, {}).get(ref_out)
        else:
            digest = external.get(inp.url or "")
        if digest is None:
            return None
        found[inp.name] = digest
    return found


def decide(stage: models.Stage, *, image: str, code_digest: str,
           outputs: Mapping[str, Mapping[str, str]], external: Mapping[str, str],
           lookup: Lookup, force: bool = False) -> Decision:
    """The decision for one stage given what is known now."""
    digests = input_digests(stage, outputs, external)
    if digests is None:
        waiting = [i.from_ for i in stage.inputs if i.from_ and i.from_.split("/")[0] not in outputs]
        return Decision(stage.name, "wait", "waits for " + ", ".join(w for w in waiting if w))
    parts = cachekey.components(stage, image, code_digest, digests)
    key = cachekey.key(parts)
    if force:
        return Decision(stage.name, "run", "cache ignored (reproduce)", key, parts, digests)
    if not stage.cache.enabled:
        return Decision(stage.name, "run", "cache disabled for this stage", key, parts, digests)
    entry = lookup(key)
    if entry is None:
        return Decision(stage.name, "run", "no verified outputs recorded for this key", key, parts, digests)
    return Decision(stage.name, "hit", "outputs recorded and verified", key, parts, digests, entry)


def simulate(spec: models.Spec, *, images: Mapping[str, str], code_digest: str,
             external: Mapping[str, str], lookup: Lookup) -> list[Decision]:
    """Decisions for the whole pipeline as if it ran now (for ``tycho explain``).

    Hits feed their recorded outputs downstream; after a miss, downstream stages wait,
    since their input digests are only known once the missed stage has run.
    """
    by_name = {s.name: s for s in spec.stages}
    outputs: dict[str, dict[str, str]] = {}
    decisions: list[Decision] = []
    for name in dag.order(dag.edges(spec)):
        d = decide(by_name[name], image=images[name], code_digest=code_digest,
                   outputs=outputs, external=external, lookup=lookup)
        if d.action == "hit" and d.cached is not None:
            outputs[name] = d.cached.outputs
        decisions.append(d)
    return decisions
