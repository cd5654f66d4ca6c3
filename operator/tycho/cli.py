"""The ``tycho`` command: argument parsing and output only; the work lives in the modules.

Scripting contract: every command takes ``--json`` (machine-readable result on stdout,
progress on stderr) and exits non-zero on failure: 1 for a failed run or a reproduction
that differs, 2 for invalid input, 128+N when signal N cancelled a run (130 for Ctrl-C,
143 for SIGTERM). Modules are imported by the command that needs them, so quick
commands (``--version``, ``runs``) start quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tycho import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from tycho.api import models
    from tycho.executors import process
    from tycho.provenance import documents
    from tycho.runners import local, progress

DEFAULT_STORE = "file://.tycho/store"
EXIT_FAILED, EXIT_INVALID = 1, 2


def _store(args: argparse.Namespace, pipeline: models.ExperimentPipeline | None = None) -> str:
    return args.store or os.environ.get("TYCHO_STORE") or (pipeline.spec.storage.url if pipeline else DEFAULT_STORE)


def _load(args: argparse.Namespace) -> models.ExperimentPipeline:
    from tycho.api import problems, validation

    path = Path(args.file)
    if not path.is_file():
        raise problems.InvalidManifest([problems.Problem(str(path), "no such file", "give the manifest's path")])
    pipeline = validation.load_bytes(path.read_bytes())
    overrides = dict(item.split("=", 1) if "=" in item else (item, "") for item in getattr(args, "set", None) or [])
    return validation.apply_overrides(pipeline, overrides) if overrides else pipeline


def _emit(args: argparse.Namespace, doc: Any) -> None:
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _executor(args: argparse.Namespace, reporter: progress.Reporter) -> process.ProcessExecutor:
    """The subprocess executor, or with ``--executor container`` the container executor
    (raises LookupError when no engine is found)."""
    from tycho.executors import process

    state = Path(".tycho")
    work, logs = state / "work", Path(getattr(args, "logs", None) or state / "logs")
    if getattr(args, "executor", None) == "container":
        from tycho.executors import container

        return container.make(work, logs, reporter, args.engine)
    return process.ProcessExecutor(work, logs, reporter)



def cmd_validate(args: argparse.Namespace, out: Console) -> int:
    pipeline = _load(args)
    _emit(args, {"valid": True, "name": pipeline.metadata.name, "stages": [s.name for s in pipeline.spec.stages]})
    if not args.json:
        out.print(f"valid: {args.file} ({len(pipeline.spec.stages)} stages)", markup=False, highlight=False)
    return 0


def _run_json(summary: documents.RunSummary) -> dict[str, Any]:
    return {"runId": summary.run_id, "phase": summary.phase, "store": summary.store,
            "stages": {n: {"phase": e.phase, "cacheHit": e.cache_hit, "cacheKey": e.cache_key, "outputs": e.outputs,
                           "metrics": e.metrics, "record": e.record, "message": e.message}
                       for n, e in summary.stages.items()}}


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.runners import local, progress

    pipeline = _load(args)
    reporter = progress.choose(err if args.json else out, args.verbose)
    opts = local.Options(store_url=_store(args, pipeline), manifest_dir=Path(args.file).resolve().parent,
                         max_parallel=args.max_parallel)
    outcome = local.run(pipeline, opts, reporter, _executor(args, reporter))
    _emit(args, _run_json(outcome.summary))
    if not args.json:
        _print_summary(out, outcome.summary, opts)
    return outcome.exit_code


def _seconds(result: documents.StageResult) -> str:
    from tycho.provenance import documents

    if not result.started_at or not result.finished_at:
        return ""
    return f"{(documents.parse_time(result.finished_at) - documents.parse_time(result.started_at)).total_seconds():.1f}s"


def _print_summary(out: Console, summary: documents.RunSummary, opts: local.Options) -> None:
    from rich.text import Text
    from rich.table import Table

    from tycho.provenance import layout
    from tycho.runners import progress

    table = Table(title=Text(f"{summary.pipeline} — run {summary.run_id} — {summary.phase}"))
    for col in ("stage", "result", "time", "detail"):
        table.add_column(col)
    for name, e in summary.stages.items():
        result = {"Cached": "cache hit", "Succeeded": "ran" + (f" ({e.attempts} attempts)" if e.attempts > 1 else "")
                  }.get(e.phase, e.phase)
        table.add_row(Text(name), result, "" if e.phase == "Cached" else _seconds(e), Text(progress.detail(e)))
    out.print(table)
    hits = sum(e.phase == "Cached" for e in summary.stages.values())
    ran = sum(e.phase == "Succeeded" for e in summary.stages.values())
    total = len(summary.stages)
    out.print(f"{hits}/{total} stages were cache hits; {ran} executed." if hits < total
              else f"all {total} stages were cache hits: nothing executed.", highlight=False)
    view = opts.view_dir / summary.run_id if opts.view_dir is not None and summary.store.startswith("file://") else None
    sinks = _unconsumed_outputs(summary)
    if sinks:
        out.print("results:")
    for stage, output in sinks:
        done = summary.stages[stage]
        if view is not None and done.phase == "Succeeded":
            where = str(view / stage / output)
        else:
            where = f"{summary.store}/{layout.object_rel(done.outputs[output])}"
        out.print(f"  {stage}/{output}: {where}", markup=False, highlight=False)
    out.print(f"run id: {summary.run_id}  (records: {summary.store}/records/; "
              f"trace an output: tycho lineage {summary.run_id}/STAGE/OUTPUT)", markup=False, highlight=False)
    for name, e in summary.stages.items():
        if e.phase == "Failed":
            out.print(f"stage {name} failed: {e.message}", markup=False, highlight=False, style="red")
    if summary.phase == "Cancelled":
        out.print(f"{summary.message}; completed stages are kept: the next run resumes from them",
                  markup=False, highlight=False, style="yellow")


def _unconsumed_outputs(summary: documents.RunSummary) -> list[tuple[str, str]]:
    """Outputs no stage reads: the pipeline's deliverables (reports, registry entries...)."""
    consumed = {i.get("from") for s in summary.manifest.get("spec", {}).get("stages", []) for i in s.get("inputs", [])}
    return [(name, output) for name, e in summary.stages.items() for output in e.outputs
            if f"{name}/{output}" not in consumed]


def cmd_explain(args: argparse.Namespace, out: Console) -> int:
    from tycho.reports import explain as explain_mod

    pipeline = _load(args)
    executor = None
    if args.executor == "container":
        from tycho.executors import container

        executor = container.make(Path(".tycho/work"), Path(".tycho/logs"), _Quiet(), args.engine)
    rows = explain_mod.explain(pipeline, _store(args, pipeline), Path(args.file).resolve().parent, executor)
    _emit(args, {"pipeline": pipeline.metadata.name, "stages": [r.model_dump(by_alias=True) for r in rows]})
    if not args.json:
        for row in rows:
            mark = "hit " if row.action == "hit" else "miss"
            out.print(f"{mark} {row.stage:<12} {row.reason}", markup=False, highlight=False,
                      style="green" if row.action == "hit" else "yellow")
            for change in row.changed:
                out.print(f"       changed: {change}", markup=False, highlight=False)
    return 0


class _Quiet:
    """A listener for executors that start nothing (explain)."""

    def line(self, stage: str, text: str) -> None: ...
    def metrics(self, stage: str, values: dict[str, float]) -> None: ...


def cmd_reproduce(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.runners import progress, reproduce as reproduce_mod

    reporter = progress.choose(err if args.json else out, args.verbose)
    if args.on_cluster:
        from tycho.controller import remote

        report = remote.reproduce(args.run_id, _store(args), namespace=args.namespace, timeout=args.timeout,
                                  log=lambda line: err.print(line, markup=False, highlight=False))
    else:
        report = reproduce_mod.reproduce(args.run_id, _store(args), reporter, _executor(args, reporter))
    _emit(args, report.model_dump(by_alias=True))
    if not args.json:
        for o in report.outputs:
            mark = "identical" if o.identical else "DIFFERS  "
            far = (f" ({o.bytes_differing:,} of {o.size_recorded:,} bytes differ"
                   + (f", now {o.size_reproduced:,} bytes" if o.size_reproduced != o.size_recorded else "") + ")"
                   if o.bytes_differing is not None and o.size_recorded is not None else "")
            out.print(f"{mark} {o.stage}/{o.output} {o.recorded[:16]}… → {(o.reproduced or 'none')[:16]}…{far}",
                      markup=False, highlight=False, style="green" if o.identical else "red")
        for stage, differences in report.environment.items():
            out.print(f"stage {stage} ran elsewhere: " + ("; ".join(differences) or "no recorded environment fact "
                      "differs (the stage itself is not deterministic)"), markup=False, highlight=False)
        for problem in report.problems:
            out.print(f"error {problem}", markup=False, highlight=False, style="red")
        for w in report.warnings:
            out.print(f"warning: {w}", markup=False, highlight=False, style="yellow")
        verdict = "bit-identical" if report.identical else "NOT identical"
        out.print(f"run {args.run_id} reproduced as {report.reproduction_run_id}: {verdict}", markup=False,
                  highlight=False)
    return 0 if report.identical else EXIT_FAILED


def cmd_lineage(args: argparse.Namespace, out: Console) -> int:
    from tycho.provenance import store as store_mod
    from tycho.reports import lineage as lineage_mod

    store = store_mod.Store(_store(args))
    steps = lineage_mod.walk(store, args.ref, _keys(args, store))
    _emit(args, {"ref": args.ref, "steps": steps})
    if not args.json:
        for step in steps:
            if step["kind"] == "raw":
                out.print(f"raw data sha256:{step['sha256'][:16]}… {step.get('uri') or ''}", markup=False,
                          highlight=False)
                continue
            out.print(f"{step['stage']} (run {step['run']})", markup=False, highlight=False, style="bold")
            lines = [f"  image  {step['image']['reference']} sha256:{(step['image']['digest'] or '?')[:16]}…",
                     f"  code   sha256:{step['code']['digest'][:16]}… commit {step['code'].get('commit', '?')}",
                     f"  params {json.dumps(step['params'], sort_keys=True)}"]
            lines += [f"  input  {i['name']} sha256:{i['sha256'][:16]}…" for i in step["inputs"]]
            lines += [f"  output {name} sha256:{digest[:16]}…" for name, digest in step["outputs"].items()]
            for line in lines:
                out.print(line, markup=False, highlight=False)
    return 0


def _keys(args: argparse.Namespace, store: Any) -> Any:
    """Whose signatures count: ``--key`` files when given (pinned), else the configured keys."""
    from tycho.provenance import audit, signing

    if getattr(args, "key", None):
        return audit.file_keys(args.key)
    local = Path(os.environ.get(signing.KEY_ENV) or ".tycho/signing.key")
    return audit.trusted_keys(store, [local] if local.is_file() else [])


def cmd_verify(args: argparse.Namespace, out: Console) -> int:
    from tycho.provenance import store as store_mod
    from tycho.reports import verify as verify_mod

    if not args.run_ids and not args.all:
        raise LookupError("name the runs to verify (RUN ...) or pass --all")
    store = store_mod.Store(_store(args))
    report = verify_mod.verify(store, None if args.all else args.run_ids, _keys(args, store))
    _emit(args, {"ok": report.ok, **report.model_dump(by_alias=True)})
    if not args.json:
        for problem in report.problems:
            out.print(f"error {problem}", markup=False, highlight=False, style="red")
        counts = ", ".join(f"{n} {k}" for k, n in report.checked.items() if n)
        verdict = "verified" if report.ok else f"{len(report.problems)} problem(s)"
        out.print(f"{verdict}: {counts} in {store.url}", markup=False, highlight=False)
    return 0 if report.ok else EXIT_FAILED


def _index(args: argparse.Namespace) -> Any:
    """The store's run index, brought up to date (see tycho.index.db)."""
    from tycho.index import db

    return db.open_synced(_store(args), getattr(args, "index", None))


def _resolve(args: argparse.Namespace, *prefixes: str) -> list[str]:
    """Full run ids for what the user typed (an id, a unique prefix or part of it), by the index."""
    index = _index(args)
    try:
        return [index.resolve(p) for p in prefixes]
    finally:
        index.close()


def _columns(args: argparse.Namespace) -> list[str] | None:
    if not args.columns:
        return None
    return [c.strip() for item in args.columns for c in item.split(",") if c.strip()]


def cmd_runs(args: argparse.Namespace, out: Console) -> int:
    from tycho.index import query

    index = _index(args)
    try:
        result = query.list_runs(index, filter_texts=args.filter or [], pipeline=args.pipeline, since=args.since,
                                 sort=args.sort, columns=_columns(args), limit=args.limit, offset=args.offset,
                                 all_runs=args.all, only_changed=args.only_changed)
    except query.QueryError as bad:
        raise _Invalid(str(bad)) from None
    finally:
        index.close()
    if args.json:
        _emit(args, result.model_dump(mode="json", by_alias=True))
    elif args.csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["runId", *[c.key for c in result.columns]])
        from tycho.reports import text

        for run in result.runs:
            writer.writerow([run.run_id, *[text.cell(run.values.get(c.key)) for c in result.columns]])
    else:
        from tycho.reports import text

        out.print(text.listing(result))
    return 0


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    from tycho.provenance import runs
    from tycho.reports import show, text

    [run_id] = _resolve(args, args.run_id)
    store = _store_of(args)
    result = show.view(store, runs.load(store, run_id))
    _emit(args, result.model_dump(mode="json", by_alias=True))
    if not args.json:
        out.print(text.run(result))
    return 0


def cmd_checks(args: argparse.Namespace, out: Console) -> int:
    """The checks a run's stages reported, with their codes (exit 1 if one failed)."""
    from tycho.provenance import runs
    from tycho.reports import show, text

    [run_id] = _resolve(args, args.run_id)
    summary = runs.load(_store_of(args), run_id)
    found = show.run_checks(summary)
    _emit(args, {"runId": run_id, "checks": [c.model_dump(mode="json") for c in found]})
    if not args.json:
        if found:
            out.print(text.checks(found))
        else:
            out.print(f"run {run_id}: no stage reported a check", markup=False, highlight=False)
    return EXIT_FAILED if any(c.severity == "fail" for c in found) else 0


def cmd_diff(args: argparse.Namespace, out: Console) -> int:
    from tycho.provenance import runs
    from tycho.reports import diff, text

    a, b = _resolve(args, args.run_a, args.run_b)
    store = _store_of(args)
    result = diff.diff(store, runs.load(store, a), runs.load(store, b))
    _emit(args, result.model_dump(mode="json", by_alias=True))
    if not args.json:
        out.print(text.rundiff(result, everything=args.all))
    return 0


def cmd_index(args: argparse.Namespace, out: Console) -> int:
    from tycho.index import db
    from tycho.provenance import store as store_mod

    index = db.Index(store_mod.Store(_store(args)), args.index)
    try:
        report = index.rebuild() if args.action == "rebuild" else index.sync(force_listing=True)
        count = int(index.conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        index.close()
    doc = {"index": index.path, "runs": count, "added": report.added, "updated": report.updated,
           "removed": report.removed, "unreadable": report.unreadable, "seconds": round(report.seconds, 3)}
    _emit(args, doc)
    if not args.json:
        out.print(f"index {index.path}: {count} runs ({report.added} added, {report.updated} updated, "
                  f"{report.removed} removed) in {report.seconds:.2f}s", markup=False, highlight=False)
        for run_id in report.unreadable:
            out.print(f"warning: the summary of {run_id} is unreadable; it is left out", markup=False,
                      highlight=False, style="yellow")
    return 0


def cmd_board(args: argparse.Namespace, out: Console) -> int:
    try:
        from tycho.board import server
    except ImportError as missing:
        raise _Invalid(f"tycho board needs the board extra ({missing.name} is missing): "
                       "pip install 'tycho[board]'") from None
    from tycho.board import verification

    logs = Path(args.logs) if args.logs else Path(".tycho/logs")
    verifier: verification.Verifier = (verification.NotChecked() if args.no_verify
                                       else verification.StoreVerifier(lambda store: _keys(args, store)))
    out.print(f"tycho board on http://{args.host}:{args.port}/ over {_store(args)} (Ctrl-C stops it)",
              markup=False, highlight=False)
    server.serve(_store(args), host=args.host, port=args.port, logs=logs, index_path=args.index, verifier=verifier)
    return 0


def _store_of(args: argparse.Namespace) -> Any:
    from tycho.provenance import store as store_mod

    return store_mod.Store(_store(args))


class _Invalid(Exception):
    """Input the command cannot use (a bad filter, a missing extra): exit 2 with the message."""


def cmd_stage_exec(args: argparse.Namespace) -> int:
    """The stage wrapper's entrypoint: SIGTERM/SIGINT stop the stage, nothing is published."""
    import threading

    from tycho.stage import invocation, wrapper

    raw = Path(args.invocation).read_text() if args.invocation else os.environ.get("TYCHO_INVOCATION", "")
    if not raw:
        print("tycho stage-exec: no invocation (set TYCHO_INVOCATION or pass --invocation FILE)", file=sys.stderr)
        return EXIT_INVALID
    inv = invocation.Invocation.model_validate_json(raw)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    result_path = Path(args.result) if args.result else None
    log = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if args.phase != "all":
            return _stage_phase(args.phase, inv, wrapper.Work(Path(args.work or os.environ.get("TYCHO_WORK", "/stage"))),
                                log, stop)
        if args.container:
            from tycho.executors import contained, engines

            run = engines.ContainerRun.model_validate_json(Path(args.container).read_text())
            result = contained.execute(inv, run, log, stop)
        else:
            result = wrapper.execute(inv, log, stop)
    except wrapper.StageCancelled as cancelled:
        print(f"[tycho] {cancelled}", file=sys.stderr, flush=True)
        if result_path:
            result_path.write_text(json.dumps({"cancelled": True}))
        return 128 + (received[0] if received else signal.SIGTERM)
    except wrapper.StageFailed as failure:
        print(f"[tycho] {failure}", file=sys.stderr, flush=True)
        if result_path:
            result_path.write_text(json.dumps({"error": str(failure)}))
        return EXIT_FAILED
    if result_path:
        result_path.write_text(json.dumps({"result": result.model_dump(mode="json")}))
    print("[tycho] result " + result.model_dump_json(), flush=True)
    return 0


VIEWS = {"runs": cmd_runs, "show": cmd_show, "checks": cmd_checks, "diff": cmd_diff, "index": cmd_index,
         "board": cmd_board}
"""Commands that only read the store (through the run index)."""


def _stage_phase(phase: str, inv: Any, work: Any, log: Any, stop: Any) -> int:
    """One container of a stage pod: fetch and publish hold store credentials, run never does."""
    from tycho.provenance import store as store_mod
    from tycho.stage import wrapper

    if phase == "fetch":
        wrapper.fetch(inv, store_mod.Store(inv.store), work)
    elif phase == "live":
        wrapper.live(inv, store_mod.Store(inv.store), work, stop)
    elif phase == "run":
        if not wrapper.run(inv, work, log, stop):
            ran = json.loads(work.ran.read_text())
            print(f"[tycho] stage {inv.stage!r} failed: {ran['reason']}", file=sys.stderr, flush=True)
            return EXIT_FAILED
    else:
        result = wrapper.publish(inv, store_mod.Store(inv.store), work, log)
        print("[tycho] result " + result.model_dump_json(), flush=True)
    return 0


def _executor_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--executor", choices=["subprocess", "container"], default="subprocess",
                    help="subprocess (default): stages run in this machine's Python; container: each stage "
                         "runs in its image (podman or docker), sharing cache keys with a cluster")
    sp.add_argument("--engine", choices=["podman", "docker"],
                    help="container engine for --executor container (default $TYCHO_CONTAINER_ENGINE, else "
                         "docker when its daemon answers, else podman)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tycho", description="Reproducible ML pipelines with provenance.")
    p.add_argument("--version", action="version", version=f"tycho {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, file: bool = False, store: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if file:
            sp.add_argument("file", help="ExperimentPipeline manifest (YAML)")
            sp.add_argument("--set", action="append", metavar="STAGE.PARAM=VALUE", help="override a param")
        if store:
            sp.add_argument("--store", help=f"store URL (overrides spec.storage.url; env TYCHO_STORE; default {DEFAULT_STORE})")
        sp.add_argument("--json", action="store_true", help="machine-readable result on stdout")
        return sp

    add("validate", "check a manifest; nothing runs", file=True, store=False)
    run = add("run", "run a pipeline on this machine", file=True)
    run.add_argument("--verbose", "-v", action="store_true", help="stream stage output")
    run.add_argument("--max-parallel", type=int, help="stages at once (default spec.maxParallel)")
    _executor_options(run)
    _executor_options(add("explain", "per stage: cache hit or miss, and what changed", file=True))
    rep = add("reproduce", "re-run a recorded run ignoring the cache and compare outputs bit for bit")
    rep.add_argument("run_id")
    rep.add_argument("--verbose", "-v", action="store_true")
    _executor_options(rep)
    rep.add_argument("--on-cluster", action="store_true",
                     help="re-run it as Jobs on the cluster of $KUBECONFIG instead of on this machine")
    rep.add_argument("--namespace", help="namespace for --on-cluster (default: the run's own)")
    rep.add_argument("--timeout", type=float, default=3600, help="seconds to wait for --on-cluster (default 3600)")
    lin = add("lineage", "trace an output back to raw data")
    lin.add_argument("ref", help="sha256:HEX, HEX, or RUN/STAGE/OUTPUT")
    ver = add("verify", "check records, signatures, objects and cache entries; exit 1 naming anything wrong")
    ver.add_argument("run_ids", nargs="*", metavar="RUN", help="runs to verify")
    ver.add_argument("--all", action="store_true", help="the whole store, every object re-hashed")
    ver.add_argument("--key", action="append", metavar="PEM", help="trusted public key (repeatable; default: the "
                     "configured signing key, $TYCHO_TRUSTED_KEYS, else the keys the store holds)")
    lin.add_argument("--key", action="append", metavar="PEM", help="trusted public key (repeatable)")
    rs = add("runs", "list recorded runs: filter, sort, choose columns (from the run index)")
    rs.add_argument("--pipeline", help="only this pipeline's runs")
    rs.add_argument("--filter", "-f", action="append", metavar="EXPR",
                    help="e.g. 'test_accuracy>=0.95', 'train.epochs=30', 'tag=digits OR owner~^ml-', "
                         "'train.seed in (1,2)', 'test_ece is missing'; repeated filters must all hold")
    rs.add_argument("--since", metavar="AGE", help="only runs created in the last AGE (90s, 15m, 6h, 2d, 1w)")
    rs.add_argument("--sort", metavar="KEY[:asc]", help="highest first (default: newest first); KEY:asc lowest first")
    rs.add_argument("--columns", "-c", action="append", metavar="K1,K2",
                    help="metrics, STAGE.PARAM params, STAGE.METRIC, tag, or attributes (owner, phase, created...)")
    rs.add_argument("--limit", type=int, default=100, help="at most N runs (default 100)")
    rs.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    rs.add_argument("--all", action="store_true", help="also list runs that executed nothing (all cache hits)")
    rs.add_argument("--only-changed", action="store_true", help="hide columns equal across the listed runs")
    rs.add_argument("--csv", action="store_true", help="CSV on stdout")
    rs.add_argument("--index", help=argparse.SUPPRESS)
    sh = add("show", "one run: stages with state, cache hits, times, metrics, artifacts, records")
    sh.add_argument("run_id", help="run id (or a unique part of it)")
    sh.add_argument("--index", help=argparse.SUPPRESS)
    ck = add("checks", "the checks a run's stages reported on data and models, with their codes (docs/checks.md)")
    ck.add_argument("run_id", help="run id (or a unique part of it)")
    ck.add_argument("--index", help=argparse.SUPPRESS)
    df = add("diff", "what differs between two runs, and why stages executed")
    df.add_argument("run_a")
    df.add_argument("run_b")
    df.add_argument("--all", action="store_true", help="also rows that are the same")
    df.add_argument("--index", help=argparse.SUPPRESS)
    ix = add("index", "the run index (a cache of the store's run summaries on this machine)")
    ix.add_argument("action", choices=["rebuild", "sync"], help="rebuild: from nothing; sync: bring up to date")
    ix.add_argument("--index", help="index file (default: under ~/.cache/tycho/index, or $TYCHO_INDEX_DIR)")
    bd = add("board", "serve the web board over the store (leaderboard, runs, compare, provenance)")
    bd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    bd.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    bd.add_argument("--logs", help="folder of local stage logs (default .tycho/logs)")
    bd.add_argument("--index", help=argparse.SUPPRESS)
    bd.add_argument("--key", action="append", metavar="PEM",
                    help="trusted public key for the verified column (repeatable; default as for tycho verify)")
    bd.add_argument("--no-verify", action="store_true", help="do not verify runs in the background")
    sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    se = sub.add_parser("stage-exec", help="run one stage (the entrypoint of stage containers)")
    se.add_argument("--invocation", help="invocation JSON file (default: $TYCHO_INVOCATION)")
    se.add_argument("--result", help="write the result (or the error) as JSON to this file")
    se.add_argument("--phase", choices=["all", "fetch", "live", "run", "publish"], default="all",
                    help="one container of a stage pod (default: all three phases in this process)")
    se.add_argument("--work", help="work directory shared by the phases (default $TYCHO_WORK, else /stage)")
    se.add_argument("--container", metavar="RUN.json", help="run the run phase in a container as RUN.json says "
                    "(the container executor), fetch and publish here")
    op = sub.add_parser("operator", help="run the Kubernetes operator (settings from TYCHO_* env, see tycho.settings)")
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "stage-exec":
        return cmd_stage_exec(args)
    if args.command == "crd":
        from tycho.api import crd
        sys.stdout.write(crd.render())
        return 0
    if args.command == "operator":
        from tycho.controller import main as operator_main
        return operator_main.run(verbose=args.verbose)
    from rich.console import Console

    # No emoji codes, no markup in what users wrote: names are shown as written.
    out, err = Console(soft_wrap=True, emoji=False), Console(stderr=True, soft_wrap=True, emoji=False)
    if args.command in VIEWS:  # read the store only: no manifest, so no API models to import (fast start)
        try:
            return VIEWS[args.command](args, out)
        except _Invalid as bad:
            err.print(f"error {bad}", markup=False, highlight=False)
            return EXIT_INVALID
        except (LookupError, FileNotFoundError) as missing:
            err.print(f"error {str(missing).strip(chr(34) + chr(39))}", markup=False, highlight=False)
            return EXIT_INVALID
    from tycho.api import problems

    try:
        if args.command in {"run", "reproduce"}:
            return {"run": cmd_run, "reproduce": cmd_reproduce}[args.command](args, out, err)
        handler = {"validate": cmd_validate, "explain": cmd_explain, "lineage": cmd_lineage, "verify": cmd_verify}
        return handler[args.command](args, out)
    except problems.InvalidManifest as invalid:
        if getattr(args, "json", False):
            _emit(args, {"valid": False, "problems": [p.__dict__ for p in invalid.problems]})
        for problem in invalid.problems:
            err.print(f"error {problem}", markup=False, highlight=False)
        return EXIT_INVALID
    except (LookupError, FileNotFoundError) as missing:
        return _fail(args, err, str(missing))
    except Exception as broken:  # noqa: BLE001 - a store item Tycho cannot use: one line, never a traceback
        from tycho.provenance import store as store_mod

        if not isinstance(broken, (ValueError, OSError, store_mod.IntegrityError)):
            raise
        return _fail(args, err, f"{type(broken).__name__}: {str(broken).splitlines()[0] if str(broken) else ''}")


def _fail(args: argparse.Namespace, err: Console, message: str) -> int:
    if getattr(args, "json", False):
        _emit(args, {"error": message})
    err.print(f"error {message}", markup=False, highlight=False)
    return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
