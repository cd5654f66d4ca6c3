"""The check contract: a stage appends one JSON line per finding to ``$TYCHO_CHECKS``
(``code``, ``severity`` warn|fail, ``message``, ``details``); docs/checks.md.

Read by the wrapper after the stage runs: a ``fail`` fails the stage with its code
(nothing is published), a ``warn`` is recorded and shown. A line that breaks the
contract counts as a failed check of its own, so a typo never hides a failing check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydantic

from tycho.provenance import documents

BAD_LINE = "TYCHO-CHECK-CONTRACT"


def read(path: Path) -> list[documents.Check]:
    """The checks in a contract file (none when the stage reported none)."""
    if not path.is_file():
        return []
    found: list[documents.Check] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(documents.Check.model_validate(json.loads(line)))
        except (ValueError, pydantic.ValidationError) as err:
            found.append(documents.Check(code=BAD_LINE, severity="fail", message=(
                f"line {number} of $TYCHO_CHECKS is not a check (needs code, severity warn|fail, message): "
                f"{str(err).splitlines()[0][:200]}")))
    return found
