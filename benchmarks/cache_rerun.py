"""Cold run vs. all-hits rerun of the reference pipeline (wall time), in a fresh store.

Usage: python benchmarks/cache_rerun.py [--set train.epochs=5 ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_run(store: str, extra: list[str]) -> tuple[float, dict]:  # type: ignore[type-arg]
    exe = Path(sys.executable).with_name("tycho")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "run", str(REPO / "pipelines" / "digits.yaml"), "--json", "--store", store, *extra],
        capture_output=True, text=True, check=True, cwd=REPO)
    return time.perf_counter() - start, json.loads(proc.stdout)


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        store = f"file://{tmp}/store"
        cold, first = timed_run(store, extra)
        warm, second = timed_run(store, extra)
    hits = sum(bool(s["cacheHit"]) for s in second["stages"].values())
    print(f"cold run            {cold:7.1f} s  ({first['phase']}, {len(first['stages'])} stages executed)")
    print(f"all-hits rerun      {warm:7.1f} s  ({hits}/{len(second['stages'])} cache hits)")
    print(f"speed-up            {cold / warm:7.1f} x")
    for name, stage in first["stages"].items():
        print(f"  {name:<10} " + ", ".join(f"{k}={v:.4g}" for k, v in list(stage["metrics"].items())[-3:]))


if __name__ == "__main__":
    main()
