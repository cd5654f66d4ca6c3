"""The run index at scale: a generated store of N runs (default 100,000) with 2,000 distinct
param/metric names. Prints: full rebuild time; p50/p95 of the first 100 rows of filtered,
sorted listings (the query ``tycho runs`` and the leaderboard make); the incremental update
per new run (``tycho run`` adding its summary; ``sync`` finding one new file).

Targets (issue 9): listing p95 <= 300 ms, incremental <= 50 ms, rebuild <= 10 min.
Usage: python benchmarks/index_scale.py [--runs 100000] [--dir DIR (kept, reused)]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_runs  # noqa: E402

from tycho.index import db, query  # noqa: E402
from tycho.provenance import documents, store as store_mod  # noqa: E402

QUERIES = [
    dict(sort="test_accuracy", filter_texts=["tag=t3"]),
    dict(sort="test_accuracy", filter_texts=["train.epochs in (10, 30) AND owner~'^user1'"]),
    dict(sort="train.lr:asc", filter_texts=["test_accuracy>=0.9"], columns=["train.lr", "test_accuracy", "m17"]),
    dict(sort="m42", filter_texts=["p100 is missing AND phase=Succeeded"]),
    dict(sort="created", filter_texts=["pipeline=pipe-2 OR tag=team1"],
         columns=["train.epochs", "test_accuracy", "p7"]),
    dict(sort="test_accuracy", filter_texts=[], columns=["train.epochs", "train.lr", "test_accuracy", "tag"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="where to generate the store (kept, and reused when present)")
    parser.add_argument("--reuse-index", action="store_true", help="skip the full rebuild (an index in --dir)")
    args = parser.parse_args()
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tycho-index-bench-")
        args.dir = Path(tmp.name)
    store_dir = args.dir / "store"
    if not (store_dir / "runs").is_dir():
        started = time.perf_counter()
        synthetic_runs.generate(store_dir, args.runs, args.names)
        print(f"generated {args.runs} runs in {time.perf_counter() - started:.0f}s")
    store = store_mod.Store(f"file://{store_dir}")
    index = db.Index(store, str(args.dir / "index.sqlite"))
    if not args.reuse_index:
        started = time.perf_counter()
        report = index.rebuild()
        rebuild = time.perf_counter() - started
        names = index.conn.execute("SELECT count(*) FROM names").fetchone()[0]
        size = Path(index.path).stat().st_size / 2**20
        print(f"full rebuild: {report.added} runs, {names} distinct names, {rebuild:.1f}s ({size:.0f} MiB index)")

    timings: list[float] = []
    for spec in QUERIES:
        per: list[float] = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            listing = query.list_runs(index, limit=100, **spec)  # type: ignore[arg-type]
            per.append(time.perf_counter() - t)
        timings += per
        print(f"  {spec.get('filter_texts')} sort={spec['sort']}: {listing.total} match, "
              f"median {statistics.median(per) * 1000:.0f} ms")
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(f"first 100 rows of a filtered sorted listing: p50 {statistics.median(timings) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms over {len(timings)} queries")

    adds: list[float] = []
    syncs: list[float] = []
    for k in range(10):
        i = args.runs + k
        synthetic_runs.generate(store_dir, 1, args.names, start=i)
        summary = documents.RunSummary.model_validate_json((store_dir / "runs" / f"bench-{i:07d}.json").read_text())
        t = time.perf_counter()
        index.add(summary)
        adds.append(time.perf_counter() - t)
        synthetic_runs.generate(store_dir, 1, args.names, start=i + 1000)
        t = time.perf_counter()
        index.sync()
        syncs.append(time.perf_counter() - t)
    print(f"incremental update per new run: add {statistics.median(adds) * 1000:.1f} ms (median), "
          f"sync finding one new summary among {args.runs} {statistics.median(syncs) * 1000:.0f} ms (median)")
    index.close()
    tycho = str(Path(sys.executable).with_name("tycho"))
    cli: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([tycho, "runs", "--store", store.url, "--index", str(args.dir / "index.sqlite"),
                        "--sort", "test_accuracy", "--columns", "train.epochs,test_accuracy", "--json"],
                       check=True, capture_output=True)
        cli.append(time.perf_counter() - t)
    print(f"`tycho runs --sort test_accuracy --columns train.epochs,test_accuracy` over {args.runs} runs, "
          f"end to end (process start included): median {statistics.median(cli) * 1000:.0f} ms")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
