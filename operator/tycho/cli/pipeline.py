"""Commands over a manifest or a recorded run that start (or plan) stages on this machine:
``validate``, ``run``, ``explain``, ``reproduce``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tycho.cli import arguments, inputs
from tycho.cli.output import EXIT_FAILED, emit, say

if TYPE_CHECKING:
    from rich.console import Console

    from tycho.provenance import documents
    from tycho.runners import local


def register(sub: arguments.SubParsers) -> None:
    arguments.command(sub, "validate", "check a manifest; nothing runs", validate, manifest=True, store=False)
    run_ = arguments.command(sub, "run", "run a pipeline on this machine", run, manifest=True)
    run_.add_argument("--verbose", "-v", action="store_true", help="stream stage output")
    run_.add_argument("--max-parallel", type=arguments.integer(1, 64),
                      help="stages at once, 1 to 64 (default spec.maxParallel)")
    arguments.executor_options(run_)
    arguments.executor_options(arguments.command(sub, "explain", "per stage: cache hit or miss, and what changed",
                                                 explain, manifest=True))
    rep = arguments.command(sub, "reproduce", "re-run a recorded run ignoring the cache and compare outputs bit "
                            "for bit", reproduce)
    rep.add_argument("run_id", type=arguments.nonempty)
    rep.add_argument("--verbose", "-v", action="store_true")
    arguments.executor_options(rep)
    rep.add_argument("--on-cluster", action="store_true",
                     help="re-run it as Jobs on the cluster of $KUBECONFIG instead of on this machine")
    rep.add_argument("--namespace", help="namespace for --on-cluster (default: the run's own)")
    rep.add_argument("--timeout", type=arguments.seconds, default=3600,
                     help="seconds to wait for --on-cluster (default 3600)")


def validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    pipeline = inputs.manifest(args)
    emit(args, {"valid": True, "name": pipeline.metadata.name, "stages": [s.name for s in pipeline.spec.stages]})
    if not args.json:
        say(out, f"valid: {args.file} ({len(pipeline.spec.stages)} stages)")
    return 0


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.runners import local, progress

    pipeline = inputs.manifest(args)
    reporter = progress.choose(err if args.json else out, args.verbose)
    opts = local.Options(store_url=inputs.store_url(args, pipeline), manifest_dir=Path(args.file).resolve().parent,
                         max_parallel=args.max_parallel)
    outcome = local.run(pipeline, opts, reporter, inputs.executor(args, reporter))
    emit(args, _run_json(outcome.summary))
    if not args.json:
        _print_summary(out, outcome.summary, opts)
    return outcome.exit_code


def _run_json(summary: documents.RunSummary) -> dict[str, Any]:
    return {"runId": summary.run_id, "phase": summary.phase, "store": summary.store,
            "stages": {n: {"phase": e.phase, "cacheHit": e.cache_hit, "cacheKey": e.cache_key, "outputs": e.outputs,
                           "metrics": e.metrics, "record": e.record, "message": e.message}
                       for n, e in summary.stages.items()}}


def _seconds(result: documents.StageResult) -> str:
    from tycho.provenance import documents

    if not result.started_at or not result.finished_at:
        return ""
    took = documents.parse_time(result.finished_at) - documents.parse_time(result.started_at)
    return f"{took.total_seconds():.1f}s"


def _print_summary(out: Console, summary: documents.RunSummary, opts: local.Options) -> None:
    from rich.table import Table
    from rich.text import Text

    from tycho.api import phases
    from tycho.provenance import layout
    from tycho.runners import progress

    table = Table(title=Text(f"{summary.pipeline} — run {summary.run_id} — {summary.phase}"))
    for col in ("stage", "result", "time", "detail"):
        table.add_column(col)
    for name, e in summary.stages.items():
        result = phases.label(e.phase) + (f" ({e.attempts} attempts)" if e.phase == "Succeeded" and e.attempts > 1
                                          else "")
        table.add_row(Text(name), result, "" if e.phase == "Cached" else _seconds(e), Text(progress.detail(e)))
    out.print(table)
    hits = sum(e.phase == "Cached" for e in summary.stages.values())
    ran = sum(e.phase == "Succeeded" for e in summary.stages.values())
    total = len(summary.stages)
    say(out, f"{hits}/{total} stages were cache hits; {ran} executed." if hits < total
        else f"all {total} stages were cache hits: nothing executed.")
    view = opts.view_dir / summary.run_id if opts.view_dir is not None and summary.store.startswith("file://") else None
    sinks = _unconsumed_outputs(summary)
    if sinks:
        say(out, "results:")
    for stage, output in sinks:
        done = summary.stages[stage]
        if view is not None and done.phase == "Succeeded":
            where = str(view / stage / output)
        else:
            where = f"{summary.store}/{layout.object_rel(done.outputs[output])}"
        say(out, f"  {stage}/{output}: {where}")
    say(out, f"run id: {summary.run_id}  (records: {summary.store}/records/; "
        f"trace an output: tycho lineage {summary.run_id}/STAGE/OUTPUT)")
    for name, e in summary.stages.items():
        if e.phase == "Failed":
            say(out, f"stage {name} failed: {e.message}", "red")
    if summary.phase == "Cancelled":
        say(out, f"{summary.message}; completed stages are kept: the next run resumes from them", "yellow")


def _unconsumed_outputs(summary: documents.RunSummary) -> list[tuple[str, str]]:
    """Outputs no stage reads: the pipeline's deliverables (reports, registry entries...)."""
    consumed = {i.get("from") for s in summary.manifest.get("spec", {}).get("stages", []) for i in s.get("inputs", [])}
    return [(name, output) for name, e in summary.stages.items() for output in e.outputs
            if f"{name}/{output}" not in consumed]


class _Quiet:
    """A listener for executors that start nothing (explain)."""

    def line(self, stage: str, text: str) -> None: ...
    def metrics(self, stage: str, values: dict[str, float]) -> None: ...


def explain(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.reports import explain as explain_mod

    pipeline = inputs.manifest(args)
    executor = inputs.executor(args, _Quiet()) if args.executor == "container" else None
    rows = explain_mod.explain(pipeline, inputs.store_url(args, pipeline), Path(args.file).resolve().parent, executor)
    emit(args, {"pipeline": pipeline.metadata.name, "stages": [r.model_dump(by_alias=True) for r in rows]})
    if not args.json:
        for row in rows:
            mark = "hit " if row.action == "hit" else "miss"
            say(out, f"{mark} {row.stage:<12} {row.reason}", "green" if row.action == "hit" else "yellow")
            for change in row.changed:
                say(out, f"       changed: {change}")
    return 0


def reproduce(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.runners import progress, reproduce as reproduce_mod

    reporter = progress.choose(err if args.json else out, args.verbose)
    if args.on_cluster:
        from tycho.controller import remote

        report = remote.reproduce(args.run_id, inputs.store_url(args), namespace=args.namespace,
                                  timeout=args.timeout, log=lambda line: say(err, line))
    else:
        report = reproduce_mod.reproduce(args.run_id, inputs.store_url(args), reporter,
                                         inputs.executor(args, reporter))
    emit(args, report.model_dump(by_alias=True))
    if not args.json:
        for o in report.outputs:
            mark = "identical" if o.identical else "DIFFERS  "
            far = (f" ({o.bytes_differing:,} of {o.size_recorded:,} bytes differ"
                   + (f", now {o.size_reproduced:,} bytes" if o.size_reproduced != o.size_recorded else "") + ")"
                   if o.bytes_differing is not None and o.size_recorded is not None else "")
            say(out, f"{mark} {o.stage}/{o.output} {o.recorded[:16]}… → {(o.reproduced or 'none')[:16]}…{far}",
                "green" if o.identical else "red")
        for stage, differences in report.environment.items():
            say(out, f"stage {stage} ran elsewhere: " + ("; ".join(differences) or "no recorded environment fact "
                "differs (the stage itself is not deterministic)"))
        for problem in report.problems:
            say(out, f"error {problem}", "red")
        for w in report.warnings:
            say(out, f"warning: {w}", "yellow")
        verdict = "bit-identical" if report.identical else "NOT identical"
        say(out, f"run {args.run_id} reproduced as {report.reproduction_run_id}: {verdict}")
    return 0 if report.identical else EXIT_FAILED
