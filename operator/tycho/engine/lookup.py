"""The engine's questions answered from a store: the cache entry for a key, if it is
trustworthy and the executor admits it (``StoreLookup``); a sweep batch's suggestions,
remembered so a re-run need not import the optimiser (``StoreSuggestions``).

Trustworthy means: the entry agrees with a record that parses strictly, carries a valid
signature, recomputes to the same key and names the same outputs (``tycho.provenance.audit``),
and every output still hashes to its digest. An edited entry or record (cache poisoning)
is refused, and the stage executes instead. Shared by every driver of the scheduler
(local runner, operator, ``explain``). Answers are remembered for the life of the
object, so a key is read and hashed at most once per run; ``refused`` keeps why an
existing entry was not used (``explain`` reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tycho.api import models
from tycho.engine import search
from tycho.provenance import audit, cache, documents, hashing, layout, store as store_mod

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


class StoreSuggestions:
    """``tycho.engine.search.suggest``, remembered in the store by the digest of everything
    the answer depends on (sweep, batch, earlier results): the answer is a pure function of
    those, so a stored one is as good as a computed one, and deleting it loses nothing.
    The memo keeps its question beside the answer, so ``tycho verify --all`` can recompute
    it (``tycho.reports.verify``)."""

    def __init__(self, store: store_mod.Store) -> None:
        self.store = store

    def __call__(self, sweep: models.Sweep, batch: int, history: Sequence[search.Told]) -> list[dict[str, Any]]:
        asked = search.question(sweep, batch, history)
        rel = layout.suggestions_rel(hashing.sha256_bytes(asked.encode()))
        try:
            stored = self.store.read_json_if_exists(rel)
        except ValueError:
            stored = None
        if isinstance(stored, dict) and stored.get("question") == asked:
            found = stored.get("suggestions")
            if isinstance(found, list) and all(isinstance(p, dict) for p in found) and \
                    len(found) == len(search.batches(sweep)[batch]):
                return [dict(p) for p in found]
        answer = search.answer(asked)
        self.store.write_json(rel, {"question": asked, "suggestions": answer})
        return answer
