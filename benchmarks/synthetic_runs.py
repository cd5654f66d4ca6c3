"""A generated store of many run summaries (format tycho.dev/run/v1) for the index and board
benchmarks: N runs over a few pipelines, owners and tags, with params and metrics drawn
from a pool of distinct names (2,000 by default), plus the common ones a leaderboard shows
(train.epochs, train.lr, test_accuracy). Deterministic for a given seed.

Usage as a script: python benchmarks/synthetic_runs.py STORE_DIR [--runs 100000] [--names 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
from pathlib import Path
from typing import Any

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STAGES = ("prepare", "train", "evaluate")


def _time(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(i: int, rng: random.Random, names: int) -> dict[str, Any]:
    half = names // 2
    run_id = f"bench-{i:07d}"
    params: dict[str, dict[str, Any]] = {"prepare": {"source": f"set-{i % 7}"},
                                         "train": {"epochs": rng.choice([5, 10, 20, 30, 50]),
                                                   "lr": rng.choice([0.1, 0.03, 0.01, 0.003, 0.001])},
                                         "evaluate": {}}
    for n in rng.sample(range(half), 12):
        params[STAGES[n % 3]][f"p{n}"] = rng.choice([rng.randint(0, 100), round(rng.random(), 4), f"v{n % 5}"])
    metrics: dict[str, dict[str, float]] = {"prepare": {"rows": 1000.0}, "train": {"loss": rng.random()},
                                            "evaluate": {"test_accuracy": round(rng.random(), 5)}}
    for n in rng.sample(range(half), 8):
        metrics[STAGES[n % 3]][f"m{n}"] = round(rng.random() * 10, 5)
    created = i * 30.0
    cached = i % 10 == 9
    stages = {}
    for s in STAGES:
        origin = f"bench-{i - 1:07d}" if cached else run_id
        stages[s] = {"name": s, "phase": "Cached" if cached else "Succeeded", "cacheKey": f"{s}-{i}",
                     "cacheHit": cached, "outputs": {"out": f"{(i * 3 + STAGES.index(s)):064x}"},
                     "record": f"records/{origin}/{s}.json", "metrics": metrics[s], "attempts": 1,
                     "keyComponents": {"params": params[s], "inputs": {"in": f"{(i * 3 + STAGES.index(s) - 1):064x}"}},
                     "startedAt": _time(created), "finishedAt": _time(created + 20)}
    return {"format": "tycho.dev/run/v1", "runId": run_id, "pipeline": f"pipe-{i % 5}", "createdAt": _time(created),
            "finishedAt": _time(created + 60), "heartbeatAt": _time(created + 60),
            "phase": "Failed" if i % 37 == 0 else "Succeeded", "owner": f"user{i % 20}",
            "tags": [f"t{i % 30}", f"team{i % 4}"], "runner": {"executor": "kubernetes"},
            "manifest": {"spec": {"stages": [{"name": s, "params": params[s]} for s in STAGES]}}, "stages": stages}


def generate(root: Path, runs: int, names: int = 2000, seed: int = 7, start: int = 0) -> None:
    rng = random.Random(seed + start)
    folder = root / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + runs):
        (folder / f"bench-{i:07d}.json").write_text(json.dumps(summary(i, rng, names)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=2000)
    args = parser.parse_args()
    generate(args.store, args.runs, args.names)
    print(f"{args.runs} run summaries in {args.store}/runs "
          f"({sum(f.stat().st_size for f in os.scandir(args.store / 'runs')) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
