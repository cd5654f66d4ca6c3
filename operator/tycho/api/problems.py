"""What is wrong with a manifest or a command's input, in words: each problem names the
field path (or the flag), what is wrong and the fix. Kept apart from validation (and its
pydantic models) so the CLI can report problems without importing them.
"""

from __future__ import annotations

import dataclasses


def escape(text: str) -> str:
    """A user's text made safe to echo: control characters (terminal escapes) as \\x.. codes."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.fix})"


class InvalidInput(Exception):
    """Input Tycho cannot use (a command-line flag, a ``--set``, a setting), raised with
    every problem found, so a user fixes them all in one pass. The CLI exits 2 with it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InvalidManifest(InvalidInput):
    """A manifest Tycho refuses: nothing of it runs."""
