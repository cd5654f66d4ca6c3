"""The I/O the planner needs answered: code identity, image identity, external data
digests, and verified cache lookups. Shared by the local runner and ``tycho explain``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import shutil
import sys
from pathlib import Path

import fsspec

from tycho.api import models
from tycho.planning import cachekey, plan
from tycho.provenance import code, hashing, store as store_mod


def code_root(pipeline: models.ExperimentPipeline, manifest_dir: Path) -> Path:
    """The stage code directory: spec.code.path relative to the manifest (default: its folder)."""
    rel = pipeline.spec.code.path or "."
    return (manifest_dir / rel).resolve()


def store_code(store: store_mod.Store, root: Path) -> dict[str, object]:
    """Store the code archive content-addressed; returns the code reference for records."""
    digest = store.put_bytes(code.archive(root))
    ref: dict[str, object] = {"digest": digest, "uri": store.uri(store.object_rel(digest))}
    git = code.git_commit(root)
    if git:
        ref.update(git)
    return ref


@functools.lru_cache(maxsize=1)
def local_environment_digest() -> str:
    """sha256 of the interpreter and every installed distribution: the local "image"."""
    dists = sorted(f"{d.metadata['Name']}=={d.version}".lower() for d in importlib.metadata.distributions()
                   if d.metadata["Name"])
    return cachekey.digest({"python": sys.version, "machine": platform.machine(), "dists": dists})


def local_image(stage: models.Stage) -> str:
    """The image component of a local cache key: the reference plus the local environment."""
    return f"{stage.image}#local-env:{local_environment_digest()}"


def external_digests(pipeline: models.ExperimentPipeline) -> dict[str, str]:
    """Digest per external URL: the pinned sha256, or the data's hash when not pinned."""
    out: dict[str, str] = {}
    for stage in pipeline.spec.stages:
        for inp in stage.inputs:
            if inp.url and inp.url not in out:
                if inp.sha256:
                    out[inp.url] = inp.sha256.removeprefix("sha256:")
                else:
                    with fsspec.open(inp.url, "rb", **store_mod.storage_options(inp.url)) as f:
                        out[inp.url] = hashing.sha256_stream(f)
    return out


def lookup(store: store_mod.Store) -> plan.Lookup:
    """A cache lookup that only answers with entries whose outputs still verify."""

    def find(key: str) -> plan.CacheEntry | None:
        rel = f"cache/{key}.json"
        if not store.exists(rel):
            return None
        entry = store.read_json(rel)
        if not all(store.verify(d) for d in entry["outputs"].values()):
            return None
        return plan.CacheEntry(key=key, outputs=dict(entry["outputs"]), record=entry["record"],
                               metrics=dict(entry.get("metrics", {})))

    return find


def materialise(store: store_mod.Store, outputs: dict[str, str], target: Path) -> None:
    """Readable copies of a stage's outputs under ``target`` (local stores only).

    Copies, not links: editing a copy must never alter the content-addressed original.
    """
    if not store.local:
        return
    target.mkdir(parents=True, exist_ok=True)
    for name, digest in outputs.items():
        src = Path(store.root) / store.object_rel(digest)
        dest = target / name
        shutil.copyfile(src, dest)
