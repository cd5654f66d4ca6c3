"""The ``tycho`` command: argument parsing and output only; the work lives in the modules.

Scripting contract: every command takes ``--json`` (machine-readable result on stdout,
progress on stderr) and exits non-zero on failure: 1 for a failed run or a reproduction
that differs, 2 for invalid input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tycho import __version__
from tycho.api import crd, models, validation
from tycho.provenance import runs, store as store_mod
from tycho.reports import explain as explain_mod, lineage as lineage_mod
from tycho.runners import local, progress, reproduce as reproduce_mod

DEFAULT_STORE = "file://.tycho/store"
EXIT_FAILED, EXIT_INVALID = 1, 2


def _store(args: argparse.Namespace, pipeline: models.ExperimentPipeline | None = None) -> str:
    return args.store or os.environ.get("TYCHO_STORE") or (pipeline.spec.storage.url if pipeline else DEFAULT_STORE)


def _load(args: argparse.Namespace) -> models.ExperimentPipeline:
    path = Path(args.file)
    if not path.is_file():
        raise validation.InvalidManifest([validation.Problem(str(path), "no such file", "give the manifest's path")])
    pipeline = validation.load_text(path.read_text())
    overrides = dict(item.split("=", 1) if "=" in item else (item, "") for item in getattr(args, "set", None) or [])
    return validation.apply_overrides(pipeline, overrides) if overrides else pipeline


def _emit(args: argparse.Namespace, doc: Any) -> None:
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def cmd_validate(args: argparse.Namespace, out: Console) -> int:
    pipeline = _load(args)
    _emit(args, {"valid": True, "name": pipeline.metadata.name, "stages": [s.name for s in pipeline.spec.stages]})
    if not args.json:
        out.print(f"[green]valid[/]: {args.file} ({len(pipeline.spec.stages)} stages)")
    return 0


def _run_json(summary: dict[str, Any]) -> dict[str, Any]:
    return {"runId": summary["runId"], "phase": summary["phase"], "store": summary["store"],
            "stages": {n: {"phase": e["phase"], "cacheHit": e["cacheHit"], "cacheKey": e["cacheKey"],
                           "outputs": e["outputs"], "metrics": e["metrics"], "record": e["record"],
                           "message": e["message"]} for n, e in summary["stages"].items()}}


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    pipeline = _load(args)
    reporter = progress.choose(err if args.json else out, args.verbose)
    opts = local.Options(store_url=_store(args, pipeline), manifest_dir=Path(args.file).resolve().parent,
                         max_parallel=args.max_parallel)
    summary = local.run(pipeline, opts, reporter)
    _emit(args, _run_json(summary))
    if not args.json:
        _print_summary(out, summary, opts)
    return 0 if summary["phase"] == "Succeeded" else EXIT_FAILED


def _seconds(entry: dict[str, Any]) -> str:
    if not entry.get("startedAt") or not entry.get("finishedAt"):
        return ""
    start, end = (dt.datetime.fromisoformat(entry[k].replace("Z", "+00:00")) for k in ("startedAt", "finishedAt"))
    return f"{(end - start).total_seconds():.1f}s"


def _print_summary(out: Console, summary: dict[str, Any], opts: local.Options) -> None:
    table = Table(title=f"{summary['pipeline']} — run {summary['runId']} — {summary['phase']}")
    for col in ("stage", "result", "time", "metrics"):
        table.add_column(col)
    hits = 0
    for name, e in summary["stages"].items():
        result = {"Cached": "cache hit", "Succeeded": "ran" + (f" ({e['attempts']} attempts)" if e["attempts"] > 1 else "")
                  }.get(e["phase"], e["phase"])
        hits += e["phase"] == "Cached"
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in _headline_metrics(e["metrics"]))
        detail = metrics or (e["message"].splitlines()[0] if e["message"] else "")
        table.add_row(name, result, "" if e["phase"] == "Cached" else _seconds(e), detail)
    out.print(table)
    total = len(summary["stages"])
    out.print(f"{hits}/{total} stages were cache hits; {total - hits} executed." if hits < total
              else f"all {total} stages were cache hits: nothing executed.")
    view = opts.view_dir / summary["runId"] if opts.view_dir is not None and summary["store"].startswith("file://") else None
    sinks = _unconsumed_outputs(summary)
    if sinks:
        out.print("results:")
    for stage, output in sinks:
        where = view / stage / output if view else summary["stages"][stage]["outputs"][output]
        out.print(f"  {stage}/{output}: {where}", highlight=False)
    out.print(f"run id: {summary['runId']}  (records: {summary['store']}/records/; "
              f"trace an output: tycho lineage {summary['runId']}/STAGE/OUTPUT)", highlight=False)
    for name, e in summary["stages"].items():
        if e["phase"] == "Failed":
            out.print(f"[red]stage {name} failed[/]: {e['message']}")


def _headline_metrics(metrics: dict[str, float], n: int = 3) -> list[tuple[str, float]]:
    """Accuracy-like metrics first, then the most recently reported ones."""
    items = list(metrics.items())
    ranked = [m for m in items if "accuracy" in m[0]] + [m for m in reversed(items) if "accuracy" not in m[0]]
    return ranked[:n]


def _unconsumed_outputs(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Outputs no stage reads: the pipeline's deliverables (reports, registry entries...)."""
    consumed = {i.get("from") for s in summary["manifest"]["spec"]["stages"] for i in s.get("inputs", [])}
    return [(name, output) for name, e in summary["stages"].items() for output in e["outputs"]
            if f"{name}/{output}" not in consumed]


def cmd_explain(args: argparse.Namespace, out: Console) -> int:
    pipeline = _load(args)
    rows = explain_mod.explain(pipeline, _store(args, pipeline), Path(args.file).resolve().parent)
    _emit(args, {"pipeline": pipeline.metadata.name, "stages": rows})
    if not args.json:
        for row in rows:
            mark = {"hit": "[green]hit [/]", "run": "[yellow]miss[/]", "wait": "[yellow]miss[/]"}[row["action"]]
            out.print(f"{mark} {row['stage']:<12} {row['reason']}")
            for change in row["changed"]:
                out.print(f"       changed: {change}", highlight=False)
    return 0


def cmd_reproduce(args: argparse.Namespace, out: Console, err: Console) -> int:
    reporter = progress.choose(err if args.json else out, args.verbose)
    result = reproduce_mod.reproduce(args.run_id, _store(args), reporter)
    _emit(args, result)
    if not args.json:
        for o in result["outputs"]:
            mark = "[green]identical[/]" if o["identical"] else "[red]DIFFERS[/]"
            out.print(f"{mark} {o['stage']}/{o['output']} {o['recorded'][:16]}… → {(o['reproduced'] or 'none')[:16]}…")
        for w in result["warnings"]:
            out.print(f"[yellow]warning[/]: {w}")
        verdict = "bit-identical" if result["identical"] else "NOT identical"
        out.print(f"run {args.run_id} reproduced as {result['reproductionRunId']}: {verdict}")
    return 0 if result["identical"] else EXIT_FAILED


def cmd_lineage(args: argparse.Namespace, out: Console) -> int:
    steps = lineage_mod.walk(store_mod.Store(_store(args)), args.ref)
    _emit(args, {"ref": args.ref, "steps": steps})
    if not args.json:
        for step in steps:
            if step["kind"] == "raw":
                out.print(f"raw data sha256:{step['sha256'][:16]}… {step.get('uri') or ''}", highlight=False)
                continue
            out.print(f"[bold]{step['stage']}[/] (run {step['run']})")
            out.print(f"  image  {step['image']['reference']} sha256:{(step['image']['digest'] or '?')[:16]}…", highlight=False)
            out.print(f"  code   sha256:{step['code']['digest'][:16]}… commit {step['code'].get('commit', '?')}", highlight=False)
            out.print(f"  params {json.dumps(step['params'], sort_keys=True)}", highlight=False)
            for i in step["inputs"]:
                out.print(f"  input  {i['name']} sha256:{i['sha256'][:16]}…", highlight=False)
            for name, digest in step["outputs"].items():
                out.print(f"  output {name} sha256:{digest[:16]}…", highlight=False)
    return 0


def cmd_runs(args: argparse.Namespace, out: Console) -> int:
    store = store_mod.Store(_store(args))
    docs = [runs.load(store, r) for r in runs.run_ids(store, args.pipeline)]
    rows = [{"runId": d["runId"], "pipeline": d["pipeline"], "phase": d["phase"], "createdAt": d["createdAt"],
             "owner": d.get("owner"), "tags": d.get("tags"), "reproduces": d.get("reproduces"),
             "hits": sum(e["phase"] == "Cached" for e in d["stages"].values()), "stages": len(d["stages"])}
            for d in docs]
    _emit(args, {"runs": rows})
    if not args.json:
        for r in rows:
            out.print(f"{r['runId']}  {r['phase']:<9} {r['hits']}/{r['stages']} hits  {r['createdAt']}", highlight=False)
    return 0


def cmd_stage_exec(args: argparse.Namespace) -> int:
    from tycho.stage import invocation, wrapper
    raw = Path(args.invocation).read_text() if args.invocation else os.environ.get("TYCHO_INVOCATION", "")
    if not raw:
        print("tycho stage-exec: no invocation (set TYCHO_INVOCATION or pass --invocation FILE)", file=sys.stderr)
        return EXIT_INVALID
    inv = invocation.Invocation.model_validate_json(raw)
    try:
        result = wrapper.execute(inv, lambda line: print(line, flush=True))
    except wrapper.StageFailed as failure:
        print(f"[tycho] {failure}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print("[tycho] result " + result.model_dump_json(), flush=True)
    return 0


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
    add("explain", "per stage: cache hit or miss, and what changed", file=True)
    rep = add("reproduce", "re-run a recorded run ignoring the cache and compare outputs bit for bit")
    rep.add_argument("run_id")
    rep.add_argument("--verbose", "-v", action="store_true")
    lin = add("lineage", "trace an output back to raw data")
    lin.add_argument("ref", help="sha256:HEX, HEX, or RUN/STAGE/OUTPUT")
    rs = add("runs", "list recorded runs")
    rs.add_argument("--pipeline")
    sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    se = sub.add_parser("stage-exec", help="run one stage (the entrypoint of stage containers)")
    se.add_argument("--invocation", help="invocation JSON file (default: $TYCHO_INVOCATION)")
    op = sub.add_parser("operator", help="run the Kubernetes operator (settings from TYCHO_* env, see tycho.settings)")
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    try:
        if args.command == "crd":
            sys.stdout.write(crd.render())
            return 0
        if args.command == "stage-exec":
            return cmd_stage_exec(args)
        if args.command == "operator":
            from tycho import operator_main
            return operator_main.run(verbose=args.verbose)
        if args.command in {"run", "reproduce"}:
            return {"run": cmd_run, "reproduce": cmd_reproduce}[args.command](args, out, err)
        handler = {"validate": cmd_validate, "explain": cmd_explain, "lineage": cmd_lineage, "runs": cmd_runs}
        return handler[args.command](args, out)
    except validation.InvalidManifest as invalid:
        if getattr(args, "json", False):
            _emit(args, {"valid": False, "problems": [p.__dict__ for p in invalid.problems]})
        for problem in invalid.problems:
            err.print(f"[red]error[/] {problem}", highlight=False)
        return EXIT_INVALID
    except (LookupError, FileNotFoundError) as missing:
        err.print(f"[red]error[/] {missing}", highlight=False)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
