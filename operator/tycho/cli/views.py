"""Commands that only read the store, through the run index: ``runs``, ``show``,
``checks``, ``diff``, ``index``, ``board``. No manifest, so no API models are imported
(they start fast)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tycho.api import problems
from tycho.cli import arguments, inputs
from tycho.cli.output import EXIT_FAILED, emit, say

if TYPE_CHECKING:
    from rich.console import Console

INDEX_HELP = "index file (default: under ~/.cache/tycho/index, or $TYCHO_INDEX_DIR)"


def register(sub: arguments.SubParsers) -> None:
    rs = arguments.command(sub, "runs", "list recorded runs: filter, sort, choose columns (from the run index)", runs)
    rs.add_argument("--pipeline", help="only this pipeline's runs")
    rs.add_argument("--filter", "-f", action="append", metavar="EXPR",
                    help="e.g. 'test_accuracy>=0.95', 'train.epochs=30', 'tag=digits OR owner~^ml-', "
                         "'train.seed in (1,2)', 'test_ece is missing'; repeated filters must all hold")
    rs.add_argument("--since", metavar="AGE", help="only runs created in the last AGE (90s, 15m, 6h, 2d, 1w)")
    rs.add_argument("--sort", metavar="KEY[:asc]", help="highest first (default: newest first); KEY:asc lowest first")
    rs.add_argument("--columns", "-c", action="append", metavar="K1,K2",
                    help="metrics, STAGE.PARAM params, STAGE.METRIC, tag, or attributes (owner, phase, created...)")
    rs.add_argument("--limit", type=arguments.integer(1, 100_000), default=100,
                    help="at most N runs, 1 to 100000 (default 100)")
    rs.add_argument("--offset", type=arguments.integer(0), default=0, help=argparse.SUPPRESS)
    rs.add_argument("--all", action="store_true", help="also list runs that executed nothing (all cache hits)")
    rs.add_argument("--only-changed", action="store_true", help="hide columns equal across the listed runs")
    rs.add_argument("--csv", action="store_true", help="CSV on stdout")
    rs.add_argument("--index", help=argparse.SUPPRESS)
    sh = arguments.command(sub, "show", "one run: stages with state, cache hits, times, metrics, artifacts, records",
                           show)
    sh.add_argument("run_id", type=arguments.nonempty, help="run id (or a unique part of it)")
    sh.add_argument("--index", help=argparse.SUPPRESS)
    ck = arguments.command(sub, "checks", "the checks a run's stages reported on data and models, with their codes "
                           "(docs/checks.md)", checks)
    ck.add_argument("run_id", type=arguments.nonempty, help="run id (or a unique part of it)")
    ck.add_argument("--index", help=argparse.SUPPRESS)
    df = arguments.command(sub, "diff", "what differs between two runs, and why stages executed", diff)
    df.add_argument("run_a", type=arguments.nonempty)
    df.add_argument("run_b", type=arguments.nonempty)
    df.add_argument("--all", action="store_true", help="also rows that are the same")
    df.add_argument("--index", help=argparse.SUPPRESS)
    ix = arguments.command(sub, "index", "the run index (a cache of the store's run summaries on this machine)",
                           index)
    ix.add_argument("action", choices=["rebuild", "sync"], help="rebuild: from nothing; sync: bring up to date")
    ix.add_argument("--index", help=INDEX_HELP)
    bd = arguments.command(sub, "board", "serve the web board over the store (leaderboard, runs, compare, "
                           "provenance)", board)
    bd.add_argument("--host", default="127.0.0.1", type=arguments.nonempty,
                    help="address to bind (default 127.0.0.1: this machine only)")
    bd.add_argument("--port", type=arguments.PORT, default=8765, help="port (default 8765)")
    bd.add_argument("--allowed-host", action="append", default=[], metavar="NAME", type=arguments.host_name,
                    help="also answer requests for this Host (repeatable; e.g. board.example.com, *.example.com). "
                         "Without it the board answers only to the names of --host (127.0.0.1 and localhost by "
                         "default; the loopback names when bound to 0.0.0.0): a guard against DNS rebinding")
    bd.add_argument("--logs", help="folder of local stage logs (default .tycho/logs)")
    bd.add_argument("--index", help=argparse.SUPPRESS)
    arguments.keys_option(bd, "trusted public key for the verified column (repeatable; default as for tycho verify)")
    bd.add_argument("--no-verify", action="store_true", help="do not verify runs in the background")


def _columns(args: argparse.Namespace) -> list[str] | None:
    if not args.columns:
        return None
    return [c.strip() for item in args.columns for c in item.split(",") if c.strip()]


def runs(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.index import query

    opened = inputs.index(args)
    try:
        result = query.list_runs(opened, filter_texts=args.filter or [], pipeline=args.pipeline, since=args.since,
                                 sort=args.sort, columns=_columns(args), limit=args.limit, offset=args.offset,
                                 all_runs=args.all, only_changed=args.only_changed)
    except query.QueryError as bad:
        raise problems.InvalidInput([problems.Problem(bad.flag, str(bad), "see `tycho runs --help` and the "
                                                      "README's filter grammar")]) from None
    finally:
        opened.close()
    if args.json:
        emit(args, result.model_dump(mode="json", by_alias=True))
        return 0
    from tycho.reports import text

    if args.csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["runId", *[c.key for c in result.columns]])
        for run in result.runs:
            writer.writerow([run.run_id, *[text.cell(run.values.get(c.key)) for c in result.columns]])
    else:
        out.print(text.listing(result))
    return 0


def show(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.provenance import runs as runs_mod
    from tycho.reports import show as show_mod, text

    [run_id] = inputs.run_ids(args, args.run_id)
    store = inputs.store(args)
    result = show_mod.view(store, runs_mod.load(store, run_id))
    emit(args, result.model_dump(mode="json", by_alias=True))
    if not args.json:
        out.print(text.run(result))
    return 0


def checks(args: argparse.Namespace, out: Console, err: Console) -> int:
    """The checks a run's stages reported, with their codes (exit 1 if one failed)."""
    from tycho.provenance import runs as runs_mod
    from tycho.reports import show as show_mod, text

    [run_id] = inputs.run_ids(args, args.run_id)
    found = show_mod.run_checks(runs_mod.load(inputs.store(args), run_id))
    emit(args, {"runId": run_id, "checks": [c.model_dump(mode="json") for c in found]})
    if not args.json:
        if found:
            out.print(text.checks(found))
        else:
            say(out, f"run {run_id}: no stage reported a check")
    return EXIT_FAILED if any(c.severity == "fail" for c in found) else 0


def diff(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.provenance import runs as runs_mod
    from tycho.reports import diff as diff_mod, text

    a, b = inputs.run_ids(args, args.run_a, args.run_b)
    store = inputs.store(args)
    result = diff_mod.diff(store, runs_mod.load(store, a), runs_mod.load(store, b))
    emit(args, result.model_dump(mode="json", by_alias=True))
    if not args.json:
        out.print(text.rundiff(result, everything=args.all))
    return 0


def index(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.index import db

    opened = db.Index(inputs.store(args), args.index)
    try:
        report = opened.rebuild() if args.action == "rebuild" else opened.sync(force_listing=True)
        count = int(opened.conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        opened.close()
    emit(args, {"index": opened.path, "runs": count, "added": report.added, "updated": report.updated,
                "removed": report.removed, "unreadable": report.unreadable, "seconds": round(report.seconds, 3)})
    if not args.json:
        say(out, f"index {opened.path}: {count} runs ({report.added} added, {report.updated} updated, "
            f"{report.removed} removed) in {report.seconds:.2f}s")
        for run_id in report.unreadable:
            say(out, f"warning: the summary of {run_id} is unreadable; it is left out", "yellow")
    return 0


def board(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        from tycho.board import server
    except ImportError as missing:
        raise problems.InvalidInput([problems.Problem("tycho board", f"the board extra is not installed "
                                                      f"({missing.name} is missing)", "pip install 'tycho[board]'")]
                                    ) from None
    from tycho.board import hosts, verification

    url = inputs.store_url(args)
    logs = Path(args.logs) if args.logs else inputs.LOCAL_STATE / "logs"
    verifier: verification.Verifier = (verification.NotChecked() if args.no_verify
                                       else verification.StoreVerifier(lambda s: inputs.trusted_keys(args, s)))
    try:
        names = hosts.allowed(args.host, args.allowed_host)
    except hosts.BadHost as bad:
        raise problems.InvalidInput([problems.Problem("--host", str(bad), "give an address (127.0.0.1, 0.0.0.0) "
                                                      "or a host name of this machine")]) from None
    shown = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL
    say(out, f"tycho board on http://{shown}:{args.port}/ over {url}, answering to {', '.join(names)} "
             "(Ctrl-C stops it)")
    server.serve(url, host=args.host, port=args.port, logs=logs, index_path=args.index, verifier=verifier,
                 allowed_hosts=names)
    return 0
