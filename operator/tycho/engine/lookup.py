"""The engine's cache question answered from a store: the entry for a key, if it is
trustworthy and the executor admits it.

Trustworthy means: the entry agrees with a record that parses strictly, carries a valid
signature, recomputes to the same key and names the same outputs (``tycho.provenance.audit``),
and every output still hashes to its digest. An edited entry or record (cache poisoning)
is refused, and the stage executes instead. Shared by every driver of the scheduler
(local runner, operator, ``explain``). Answers are remembered for the life of the
object, so a key is read and hashed at most once per run; ``refused`` keeps why an
existing entry was not used (``explain`` reports it).
"""

from __future__ import annotations

from collections.abc import Callable

from tycho.provenance import audit, cache, documents, layout, store as store_mod

Admit = Callable[[documents.CacheEntry], "str | None"]


class StoreLookup:
    def __init__(self, store: store_mod.Store, admit: Admit | None = None, keys: audit.Keys | None = None) -> None:
        self.store = store
        self.admit = admit
        self.refused: dict[str, str] = {}
        self._keys = keys
        self._memo: dict[str, documents.CacheEntry | None] = {}

    @property
    def keys(self) -> audit.Keys:
        if self._keys is None:
            self._keys = audit.trusted_keys(self.store)
        return self._keys

    def __call__(self, key: str) -> documents.CacheEntry | None:
        if key not in self._memo:
            self._memo[key] = self._find(key)
        return self._memo[key]

    def _find(self, key: str) -> documents.CacheEntry | None:
        rel = layout.cache_rel(key)
        if not self.store.exists(rel):
            return None
        entry, findings = audit.check_entry(self.store, rel, self.keys)
        if entry is None or findings:
            self.refused[key] = f"it does not verify: {findings[0]}" if findings else "it is unreadable"
            return None
        if not cache.verified(self.store, entry.outputs, entry.directories):
            self.refused[key] = "its recorded outputs are missing or corrupted in the store"
            return None
        why = self.admit(entry) if self.admit else None
        if why:
            self.refused[key] = why
            return None
        return entry
