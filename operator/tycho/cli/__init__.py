"""The ``tycho`` command: argument parsing and output only; the work lives in the modules.

Scripting contract: every command takes ``--json`` (machine-readable result on stdout,
progress on stderr) and exits non-zero on failure: 1 for a failed run or a reproduction
that differs, 2 for invalid input (``--json`` then prints ``{"error": ...}`` on stdout),
128+N when signal N cancelled a run (130 for Ctrl-C, 143 for SIGTERM).

The commands live in one module per group, each registering its parsers (Kedro's CLI
does the same): ``pipeline`` (validate, run, explain, reproduce), ``views`` (runs, show,
checks, diff, index, board), ``records`` (lineage, verify), ``stage`` (stage-exec),
``system`` (crd, operator). ``app`` parses and maps every error to its exit code in one
place. Modules are imported by the command that needs them, so quick commands
(``--version``, ``runs``) start quickly.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The ``tycho`` entry point (``python -m tycho`` too)."""
    from tycho.cli import app

    return app.main(argv)
