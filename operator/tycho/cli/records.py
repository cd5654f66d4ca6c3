"""Commands over the provenance records: ``lineage`` (walk an output back to raw data)
and ``verify`` (re-hash, parse, check signatures)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from tycho.api import problems
from tycho.cli import arguments, inputs
from tycho.cli.output import EXIT_FAILED, emit, say

if TYPE_CHECKING:
    from rich.console import Console


def register(sub: arguments.SubParsers) -> None:
    lin = arguments.command(sub, "lineage", "trace an output back to raw data", lineage)
    lin.add_argument("ref", type=arguments.nonempty, help="sha256:HEX, HEX, or RUN/STAGE/OUTPUT")
    arguments.keys_option(lin)
    ver = arguments.command(sub, "verify", "check records, signatures, objects and cache entries; exit 1 naming "
                            "anything wrong", verify)
    ver.add_argument("run_ids", nargs="*", metavar="RUN", help="runs to verify")
    ver.add_argument("--all", action="store_true", help="the whole store, every object re-hashed")
    arguments.keys_option(ver, "trusted public key (repeatable; default: the configured signing key, "
                          "$TYCHO_TRUSTED_KEYS, else the keys the store holds)")


def lineage(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.reports import lineage as lineage_mod

    store = inputs.store(args)
    steps = lineage_mod.walk(store, args.ref, inputs.trusted_keys(args, store))
    emit(args, {"ref": args.ref, "steps": steps})
    if args.json:
        return 0
    for step in steps:
        if step["kind"] == "raw":
            say(out, f"raw data sha256:{step['sha256'][:16]}… {step.get('uri') or ''}")
            continue
        say(out, f"{step['stage']} (run {step['run']})", "bold")
        lines = [f"  image  {step['image']['reference']} sha256:{(step['image']['digest'] or '?')[:16]}…",
                 f"  code   sha256:{step['code']['digest'][:16]}… commit {step['code'].get('commit', '?')}",
                 f"  params {json.dumps(step['params'], sort_keys=True)}"]
        lines += [f"  input  {i['name']} sha256:{i['sha256'][:16]}…" for i in step["inputs"]]
        lines += [f"  output {name} sha256:{digest[:16]}…" for name, digest in step["outputs"].items()]
        for line in lines:
            say(out, line)
    return 0


def verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    from tycho.reports import verify as verify_mod

    if not args.run_ids and not args.all:
        raise problems.InvalidInput([problems.Problem("tycho verify", "nothing to verify",
                                                      "name the runs to verify (RUN ...) or pass --all")])
    if args.run_ids and args.all:
        raise problems.InvalidInput([problems.Problem("--all", "--all verifies the whole store, RUN names some runs",
                                                      "give either RUN ... or --all")])
    store = inputs.store(args)
    report = verify_mod.verify(store, None if args.all else args.run_ids, inputs.trusted_keys(args, store))
    emit(args, {"ok": report.ok, **report.model_dump(by_alias=True)})
    if not args.json:
        for problem in report.problems:
            say(out, f"error {problem}", "red")
        counts = ", ".join(f"{n} {k}" for k, n in report.checked.items() if n) or "nothing"
        verdict = "verified" if report.ok else f"{len(report.problems)} problem(s)"
        say(out, f"{verdict}: {counts} in {store.url}")
    return 0 if report.ok else EXIT_FAILED
