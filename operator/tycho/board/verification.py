"""The "verified" column and badge: whether a run's records, signatures and objects check out.

``StoreVerifier`` runs the same checks as ``tycho verify RUN`` (``tycho.reports.verify``)
for one finished run: every record parses strictly and is signed by a trusted key, every
object it names re-hashes to its name, the cache entries and the summary agree with the
records. The board's sync thread verifies finished runs in the background and keeps the
answer in the index's ``verified`` column (so the leaderboard can show and filter on
``verified=ok`` without re-checking); the run page shows the checks and problems of its
run. A run still running is not checked: its records are not all written yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import pydantic

from tycho.api import phases
from tycho.provenance import audit, documents, store as store_mod

State = Literal["ok", "failed", "unchecked"]


class Verification(pydantic.BaseModel):
    state: State = "unchecked"
    checks: list[str] = []
    """What was checked, one line each (e.g. "7 records", "23 objects re-hashed")."""
    problems: list[str] = []


class Verifier(Protocol):
    def check(self, store: store_mod.Store, summary: documents.RunSummary) -> Verification: ...


class NotChecked:
    """For a board asked not to verify (``tycho board --no-verify``): says so instead of pretending."""

    def check(self, store: store_mod.Store, summary: documents.RunSummary) -> Verification:
        return Verification(state="unchecked", checks=["verification is off for this board"], problems=[])


_WHAT = {"records": "records parsed and signature-checked", "objects": "objects re-hashed",
         "cacheEntries": "cache entries matched to their records", "markers": "run markers"}


class StoreVerifier:
    """``tycho verify RUN`` for one finished run, against the keys trusted when the board
    started (the configured signing key and ``TYCHO_TRUSTED_KEYS``, else the store's own)."""

    def __init__(self, keys: Callable[[store_mod.Store], audit.Keys] = audit.trusted_keys) -> None:
        self._keys = keys
        self._trusted: audit.Keys | None = None

    def check(self, store: store_mod.Store, summary: documents.RunSummary) -> Verification:
        from tycho.reports import verify

        if summary.phase not in phases.RUN_FINISHED or summary.phase == "Lost":
            return Verification(state="unchecked", checks=[f"not checked while the run is {summary.phase}"])
        if self._trusted is None:
            self._trusted = self._keys(store)
        report = verify.verify(store, [summary.run_id], self._trusted)
        checks = [f"{n} {_WHAT[k]}" for k, n in report.checked.items() if k in _WHAT and n]
        return Verification(state="ok" if report.ok else "failed", checks=checks, problems=report.problems)
