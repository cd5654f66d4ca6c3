"""``tycho stage-exec``: the entrypoint of every stage process, container and pod.

All phases in one process (local executors), or one phase per container of a stage pod:
fetch and publish hold the store credentials, run never does. SIGTERM/SIGINT stop the
stage and nothing is published.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tycho.api import problems
from tycho.cli import arguments
from tycho.cli.output import EXIT_FAILED

if TYPE_CHECKING:
    import pydantic

    from tycho.stage import invocation, work as work_mod

M = TypeVar("M", bound="pydantic.BaseModel")
INVOCATION_ENV = "TYCHO_INVOCATION"
WORK_ENV = "TYCHO_WORK"


def register(sub: arguments.SubParsers) -> None:
    se = sub.add_parser("stage-exec", help="run one stage (the entrypoint of stage containers)")
    se.set_defaults(handler=stage_exec, console=False)
    se.add_argument("--invocation", help=f"invocation JSON file (default: ${INVOCATION_ENV})")
    se.add_argument("--result", help="write the result (or the error) as JSON to this file")
    se.add_argument("--phase", choices=["all", "fetch", "live", "run", "publish"], default="all",
                    help="one container of a stage pod (default: all three phases in this process)")
    se.add_argument("--work", help=f"work directory shared by the phases (default ${WORK_ENV}, else /stage)")
    se.add_argument("--container", metavar="RUN.json", help="run the run phase in a container as RUN.json says "
                    "(the container executor), fetch and publish here")


def _invocation(args: argparse.Namespace) -> invocation.Invocation:
    from tycho.stage import invocation

    where = "--invocation" if args.invocation else INVOCATION_ENV
    raw = _read(args.invocation, where) if args.invocation else os.environ.get(INVOCATION_ENV, "")
    if not raw.strip():
        raise problems.InvalidInput([problems.Problem(where, "no invocation",
                                                      f"set {INVOCATION_ENV} or pass --invocation FILE")])
    return _parse(invocation.Invocation, raw, where, "pass the invocation an executor wrote")


def _read(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise problems.InvalidInput([problems.Problem(where, f"cannot read {path}: {why}",
                                                      "give the path of the JSON file an executor wrote")]) from None


def _parse(model: type[M], raw: str, where: str, fix: str) -> M:
    import pydantic

    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise problems.InvalidInput([problems.Problem(
            where, f"not a valid {model.__name__}: {field}: {first['msg']} ({err.error_count()} problem(s))", fix)]
        ) from None


def stage_exec(args: argparse.Namespace) -> int:
    from tycho.stage import work as work_mod, wrapper

    inv = _invocation(args)
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
            return _phase(args.phase, inv, work_mod.Work(Path(args.work or os.environ.get(WORK_ENV, "/stage"))),
                          log, stop)
        if args.container:
            from tycho.executors import contained, engines

            run = _parse(engines.ContainerRun, _read(args.container, "--container"), "--container",
                         "pass the RUN.json the container executor wrote")
            result = contained.execute(inv, run, log, stop)
        else:
            result = wrapper.execute(inv, log, stop)
    except work_mod.StageCancelled as cancelled:
        print(f"[tycho] {cancelled}", file=sys.stderr, flush=True)
        if result_path:
            result_path.write_text(json.dumps({"cancelled": True}))
        return 128 + (received[0] if received else signal.SIGTERM)
    except work_mod.StageFailed as failure:
        print(f"[tycho] {failure}", file=sys.stderr, flush=True)
        if result_path:
            result_path.write_text(json.dumps({"error": str(failure)}))
        return EXIT_FAILED
    if result_path:
        result_path.write_text(json.dumps({"result": result.model_dump(mode="json")}))
    print("[tycho] result " + result.model_dump_json(), flush=True)
    return 0


def _phase(phase: str, inv: invocation.Invocation, work: work_mod.Work, log: work_mod.Log,
           stop: threading.Event) -> int:
    """One container of a stage pod."""
    from tycho.provenance import store as store_mod
    from tycho.stage import fetch as fetch_mod, publish as publish_mod, supervise

    if phase == "fetch":
        fetch_mod.fetch(inv, store_mod.Store(inv.store), work)
    elif phase == "live":
        supervise.live(inv, store_mod.Store(inv.store), work, stop)
    elif phase == "run":
        if not supervise.run(inv, work, log, stop):
            ran = json.loads(work.ran.read_text())
            print(f"[tycho] stage {inv.stage!r} failed: {ran['reason']}", file=sys.stderr, flush=True)
            return EXIT_FAILED
    else:
        result = publish_mod.publish(inv, store_mod.Store(inv.store), work, log)
        print("[tycho] result " + result.model_dump_json(), flush=True)
    return 0
