"""The engine's cache question answered from a store: the entry for a key, if its outputs
still verify and the executor admits it.

Shared by every driver of the scheduler (local runner, operator, ``explain``). Answers
are remembered for the life of the object, so a key is read and hashed at most once per
run; ``refused`` keeps why an existing entry was not used (``explain`` reports it).
"""

from __future__ import annotations

from collections.abc import Callable

from tycho.provenance import cache, documents, store as store_mod

Admit = Callable[[documents.CacheEntry], "str | None"]


class StoreLookup:
    def __init__(self, store: store_mod.Store, admit: Admit | None = None) -> None:
        self.store = store
        self.admit = admit
        self.refused: dict[str, str] = {}
        self._memo: dict[str, documents.CacheEntry | None] = {}

    def __call__(self, key: str) -> documents.CacheEntry | None:
        if key not in self._memo:
            self._memo[key] = self._find(key)
        return self._memo[key]

    def _find(self, key: str) -> documents.CacheEntry | None:
        entry = cache.read(self.store, key)
        if entry is None:
            return None
        if not cache.verified(self.store, entry.outputs, entry.directories):
            self.refused[key] = "its recorded outputs are missing or corrupted in the store"
            return None
        why = self.admit(entry) if self.admit else None
        if why:
            self.refused[key] = why
            return None
        return entry
