"""The cache index: for a cache key, the record and output digests a stage execution made.

The stage wrapper writes an entry after the record (``write``); the engine reads it
before deciding a hit (``read`` + ``verified``). An entry is only an index: the record
is the evidence, and a hit is used only when every output still hashes right.
"""

from __future__ import annotations

from collections.abc import Mapping

import pydantic

from tycho.provenance import documents, jsondoc, layout, store as store_mod, tree


def read(store: store_mod.Store, key: str) -> documents.CacheEntry | None:
    try:
        doc = store.read_json_if_exists(layout.cache_rel(key))
        return None if doc is None else documents.CacheEntry.model_validate(doc)
    except (ValueError, pydantic.ValidationError):
        return None  # an unreadable entry is no entry: the stage runs and writes a good one


def encode(entry: documents.CacheEntry) -> bytes:
    """The bytes a cache entry is stored as (``verify`` compares against them)."""
    return jsondoc.encode(entry.model_dump(mode="json", by_alias=True, exclude_none=True))


def write(store: store_mod.Store, entry: documents.CacheEntry) -> None:
    store.write_bytes(layout.cache_rel(entry.key), encode(entry))


def producer_bytes(digest: str, record_rel: str) -> bytes:
    """``producers/<hex>.json``: which record produced an object (``tycho lineage`` starts there)."""
    return jsondoc.encode({"sha256": digest, "record": record_rel})


def write_producer(store: store_mod.Store, digest: str, record_rel: str) -> None:
    store.write_bytes(layout.producer_rel(digest), producer_bytes(digest, record_rel))


def verified(store: store_mod.Store, outputs: Mapping[str, str], directories: list[str]) -> bool:
    """Every output exists and still hashes to its digest (trees: every file too)."""
    return all(tree.verify(store, d) if name in directories else store.verify(d) for name, d in outputs.items())
