"""The reference pipeline with the container executor: cold run, all-hits rerun, and what a
container costs each stage.

Runs `tycho run pipelines/digits.yaml --executor container` (small settings by default)
twice in a fresh store and prints the wall times, then per stage execution the time from
the engine's `run` command to the stage wrapper's start inside the container (each stage
log's "[tycho] container: the wrapper started ...s after podman run" line), and for
comparison a bare `podman run --rm --entrypoint true` of the same image (the engine alone).
Needs the stage image: `make images`.

Usage: python benchmarks/containers.py [--engine podman|docker] [--set train.epochs=5 ...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--set", "train.epochs=2", "--set", "tune.epochs=2", "--set", "tune.sweep.trials=2",
         "--set", "tune.sweep.parallelism=2", "--set", "release.threshold=0.5"]
STARTED = re.compile(r"^\[tycho\] container: the wrapper started ([0-9.]+)s after")


def timed_run(cwd: Path, store: str, engine: str, extra: list[str]) -> tuple[float, dict]:  # type: ignore[type-arg]
    exe = Path(sys.executable).with_name("tycho")
    start = time.perf_counter()
    proc = subprocess.run([str(exe), "run", str(REPO / "pipelines" / "digits.yaml"), "--json", "--store", store,
                           "--executor", "container", "--engine", engine, *extra],
                          capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"tycho run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, json.loads(proc.stdout)


def bare_starts(engine: str, image: str, count: int = 5) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run([engine, "run", "--rm", "--read-only", "--network", "none", "--entrypoint", "true", image],
                       check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="podman")
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.PARAM=VALUE")
    args = ap.parse_args()
    extra = [a for item in args.set for a in ("--set", item)] or SMALL
    with tempfile.TemporaryDirectory(prefix="tycho-bench-containers-") as tmp:
        cwd = Path(tmp)
        store = f"file://{tmp}/store"
        cold, first = timed_run(cwd, store, args.engine, extra)
        warm, second = timed_run(cwd, store, args.engine, extra)
        starts = [float(m[1]) for log in sorted((cwd / ".tycho" / "logs").glob("*/*.log"))
                  for line in log.read_text(errors="replace").splitlines() if (m := STARTED.match(line))]
    image = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())["spec"]["stages"][0]["image"]
    bare = bare_starts(args.engine, image)
    hits = sum(bool(s["cacheHit"]) for s in second["stages"].values())
    print(f"cold run              {cold:7.1f} s  ({first['phase']}, {len(starts)} stage executions in containers)")
    print(f"all-hits rerun        {warm:7.1f} s  ({hits}/{len(second['stages'])} cache hits, no container)")
    print(f"engine run -> wrapper {statistics.median(starts):7.2f} s  median per stage execution "
          f"(min {min(starts):.2f}, max {max(starts):.2f})")
    print(f"bare {args.engine} run        {statistics.median(bare):7.2f} s  median of {len(bare)} "
          f"`{args.engine} run --rm --entrypoint true`")
    for name, stage in first["stages"].items():
        print(f"  {name:<10} " + ", ".join(f"{k}={v:.4g}" for k, v in list(stage["metrics"].items())[-3:]))


if __name__ == "__main__":
    main()
