"""The seam for the "verified" column: whether a run's records (and, once signing lands,
their signatures) check out.

Until the trust work provides a verifier, every run shows "not checked". To plug one in,
implement ``Verifier.check`` (a run summary and its store in, a ``Verification`` out) and
pass it to ``tycho.board.server.app(verifier=...)``; the leaderboard column, the run page
badge and ``/api/runs/RUN`` (``verification``) show its answer. The index keeps a
``verified`` column for a verifier that records results, so the leaderboard can filter on
``verified=ok`` without re-checking.
"""

from __future__ import annotations

from typing import Literal, Protocol

import pydantic

from tycho.provenance import documents, store as store_mod

State = Literal["ok", "failed", "unchecked"]


class Verification(pydantic.BaseModel):
    state: State = "unchecked"
    checks: list[str] = []
    """What was checked, one line each (e.g. "record evaluate: digest of report_html matches")."""
    problems: list[str] = []


class Verifier(Protocol):
    def check(self, store: store_mod.Store, summary: documents.RunSummary) -> Verification: ...


class NotChecked:
    """The default until verification lands: says so instead of pretending."""

    def check(self, store: store_mod.Store, summary: documents.RunSummary) -> Verification:
        return Verification(state="unchecked", checks=[], problems=[])
