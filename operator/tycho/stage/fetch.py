"""The fetch phase: materialise a stage's inputs and params in its work directory and
verify every digest (store access; stage code has not started yet)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tycho.provenance import documents, hashing, store as store_mod, tree
from tycho.stage.invocation import Invocation
from tycho.stage.work import StageFailed, Work


def _fetch_inputs(inv: Invocation, store: store_mod.Store, target: Path) -> list[dict[str, str | None]]:
    """Materialise inputs as files or folders; verify every digest. Returns them as recorded."""
    recorded: list[dict[str, str | None]] = []
    for inp in inv.inputs:
        dest = target / inp.name
        if inp.url is None:
            assert inp.sha256 is not None
            if inp.type == "directory":
                tree.get(store, inp.sha256, dest)
            else:
                store.get_file(inp.sha256, dest)
            digest = inp.sha256
        else:
            import fsspec  # URL inputs only

            with fsspec.open(inp.url, "rb", **store_mod.storage_options(inp.url)) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, hashing.CHUNK)
            digest = hashing.sha256_file(dest)
            if inp.sha256 is not None and digest != inp.sha256:
                raise StageFailed(f"input {inp.name!r} from {inp.url} has sha256 {digest}, expected {inp.sha256}; "
                                  "the data changed: update inputs[].sha256 if the change is intended")
        recorded.append({"name": inp.name, "url": inp.url, "sha256": digest, "producer": inp.producer,
                         "type": inp.type})
    return recorded


def fetch(inv: Invocation, store: store_mod.Store, work: Work) -> None:
    """Materialise inputs and params; note what was verified where stage code cannot write."""
    for folder in (work.inputs, work.fetched.parent):  # in a pod: the two volumes fetch may write
        folder.mkdir(parents=True, exist_ok=True)
    started = documents.now()
    inputs = _fetch_inputs(inv, store, work.inputs)
    work.params.write_text(json.dumps(inv.params, indent=2, sort_keys=True))
    work.fetched.write_text(json.dumps({"started": started, "inputs": inputs}))
