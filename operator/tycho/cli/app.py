"""Parse the command line, run the command, and map every failure to its exit code.

This is the one place that decides how a failure looks to a user or a script: bad input
(a flag, ``--set``, a manifest, a run id that matches nothing, a store item Tycho cannot
use) exits 2 with one ``error ...`` line per problem on stderr, naming what to fix, and
with ``--json`` also ``{"error": ..., "problems": [...]}`` on stdout. A traceback means a
bug in Tycho, never bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from tycho import __version__
from tycho.api import problems
from tycho.cli import pipeline, records, stage, system, views
from tycho.cli.output import EXIT_INVALID

if TYPE_CHECKING:
    from rich.console import Console

GROUPS = (pipeline, views, records, stage, system)
"""The command modules, in the order ``tycho --help`` lists their commands."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error goes through the same path as every other bad input
    (one ``error FLAG: ...`` line, exit 2, JSON with ``--json``) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        where, _, what = message.partition(": ")
        if not where.startswith("argument ") or not what:
            where, what = self.prog, message
        raise problems.InvalidInput([problems.Problem(
            where.removeprefix("argument ").split("/")[-1], what, f"see `{self.prog} --help`")])


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="tycho", description="Reproducible ML pipelines with provenance.")
    p.add_argument("--version", action="version", version=f"tycho {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv
    try:
        args = parser().parse_args(argv)
    except problems.InvalidInput as bad:
        return _invalid(bad, as_json, _stderr())
    console = getattr(args, "console", True)  # stage-exec, crd, operator print nothing of ours
    if console:
        from rich.console import Console

        # No emoji codes, no markup in what users wrote: names are shown as written.
        out, err = Console(soft_wrap=True, emoji=False), Console(stderr=True, soft_wrap=True, emoji=False)
    else:
        out = err = _stderr()
    as_json = bool(getattr(args, "json", False))
    try:
        code: int = args.handler(args, out, err) if console else args.handler(args)
        return code
    except problems.InvalidInput as bad:
        return _invalid(bad, as_json, err)
    except (LookupError, FileNotFoundError) as missing:  # a run, an object, a file that is not there
        said = missing.args[0] if isinstance(missing, KeyError) and missing.args else missing  # no repr quotes
        return _failed(str(said), as_json, err)
    except Exception as broken:  # noqa: BLE001 - what Tycho could not use: one line, never a traceback
        message = failure(broken)
        if message is None:
            raise
        return _failed(message, as_json, err)


def failure(broken: BaseException) -> str | None:
    """One line for an error that comes from what a command was given or pointed at (a
    store, an index, a cluster), with the fix where there is one; None for a bug in Tycho
    (which keeps its traceback)."""
    from tycho.provenance import store as store_mod

    first = str(broken).splitlines()[0] if str(broken) else ""
    family = type(broken).__module__.split(".")[0]
    if family == "botocore":
        fix = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for MinIO and other "
               "S3-compatible stores)") if "Credentials" in type(broken).__name__ else "check the store URL and access"
        return f"the store refused: {type(broken).__name__}: {first} (fix: {fix})"
    if family == "sqlite3":
        return (f"the run index cannot be used: {first} (fix: point TYCHO_INDEX_DIR at a writable folder, or run "
                "`tycho index rebuild`)")
    if family == "kubernetes" and type(broken).__name__ == "ConfigException":
        return f"no cluster to talk to: {first} (fix: set KUBECONFIG, or run in a pod with a ServiceAccount)"
    if isinstance(broken, (ValueError, OSError, OverflowError, store_mod.IntegrityError)):
        return f"{type(broken).__name__}: {first}"
    return None


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, emoji=False)


def _invalid(bad: problems.InvalidInput, as_json: bool, err: Console) -> int:
    if as_json:
        doc: dict[str, Any] = {"error": str(bad.problems[0]) if bad.problems else str(bad),
                               "problems": [p.__dict__ for p in bad.problems]}
        if isinstance(bad, problems.InvalidManifest):
            doc["valid"] = False
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    for problem in bad.problems:
        err.print(f"error {problem}", markup=False, highlight=False)
    return EXIT_INVALID


def _failed(message: str, as_json: bool, err: Console) -> int:
    if as_json:
        sys.stdout.write(json.dumps({"error": message}, indent=2, sort_keys=True) + "\n")
    err.print(f"error {message}", markup=False, highlight=False)
    return EXIT_INVALID
