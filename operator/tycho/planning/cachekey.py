"""Cache keys: sha256 over the canonical JSON of everything that determines a stage's outputs.

The components are kept next to the key (in run summaries) so ``tycho explain`` can say
which one changed. Pure code, and the one home of the key: every executor computes the key
here from the same parts, so the same stage gets the same key wherever it runs, as long
as the executors report the same image identity (``image_part``) and code digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tycho.api import models

KEY_SCHEMA = "tycho-cache-key/v2"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same value in any process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def public_env(stage: models.Stage) -> dict[str, str]:
    """The stage's literal env values; Secret-backed ones never enter keys or records."""
    return {e.name: e.value for e in stage.env if e.value is not None}


def image_part(*, reference: str, digest: str | None = None,
               environment: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The image's part of a key. A known digest is the identity (the same bits under any
    name or tag); otherwise the reference, plus what identifies a local environment."""
    if digest:
        return {"digest": digest.removeprefix("sha256:")}
    part: dict[str, Any] = {"reference": reference}
    if environment:
        part["environment"] = dict(environment)
    return part


def components(stage: models.Stage, image: Mapping[str, Any], code_digest: str,
               input_digests: Mapping[str, str], *, trial_of: models.Sweep | None = None,
               stop_rule: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the key covers, by name (the names ``explain`` reports).

    A sweep stage's key covers its whole sweep; a trial (``trial_of``: the sweep it belongs
    to, ``stage`` carrying the trial's params) covers the objective it reports and the
    early-stopping rule it ran under (``stop_rule``), which decide what its outputs are."""
    parts: dict[str, Any] = {
        "tycho": KEY_SCHEMA,
        "cacheVersion": stage.cache.version,
        "image": dict(image),
        "command": list(stage.command),
        "args": list(stage.args),
        "env": dict(sorted(public_env(stage).items())),
        "params": dict(stage.params),
        "inputs": dict(sorted(input_digests.items())),
        "outputs": sorted(o.name if o.type == "file" else f"{o.name}/" for o in stage.outputs),
        "code": code_digest,
    }
    if stage.sweep is not None:
        parts["sweep"] = stage.sweep.model_dump(mode="json", by_alias=True)
    if trial_of is not None:
        parts["objective"] = trial_of.objective.metric
        if stop_rule is not None:
            parts["earlyStopping"] = dict(stop_rule)
    return parts


def key(parts: Mapping[str, Any]) -> str:
    return digest(dict(parts))


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable list of what differs, e.g. ``params.epochs: 30 -> 2``."""
    out: list[str] = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    out.append(f"{name}.{sub}: {_short(a.get(sub))} -> {_short(b.get(sub))}")
        else:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = "(none)" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:12] + "…" + text[-8:]
