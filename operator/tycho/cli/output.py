"""What every command shares on the way out: exit codes, the JSON result, plain lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

EXIT_FAILED, EXIT_INVALID = 1, 2


def emit(args: argparse.Namespace, doc: Any) -> None:
    """The command's result as JSON on stdout, when ``--json`` asked for it."""
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def say(console: Console, text: str, style: str | None = None) -> None:
    """A line as written: no markup or highlighting of names users chose."""
    console.print(text, markup=False, highlight=False, style=style)
