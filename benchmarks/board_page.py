"""Server-side time of the board's leaderboard over a generated store of N runs (default
10,000): the HTML page and its /api/runs twin, sorted by a metric with chosen columns,
first page and a deep page. Prints p50/p95 per request (target, issue 9: <= 1 s).

Usage: python benchmarks/board_page.py [--runs 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_runs  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from tycho.board import server  # noqa: E402

REQUESTS = [
    ("leaderboard page, default view", "/"),
    ("leaderboard page, sorted by a metric, 6 columns",
     "/?sort=test_accuracy&columns=train.epochs,train.lr,test_accuracy,m17,tag,owner"),
    ("leaderboard page, filtered + sorted, page 40",
     "/?filter=train.epochs%3E%3D20&sort=test_accuracy&columns=train.epochs,test_accuracy&offset=2000"),
    ("/api/runs, sorted by a metric", "/api/runs?sort=test_accuracy&columns=train.epochs,test_accuracy&limit=100"),
    ("/api/parallel, every run, 3 dims", "/api/parallel?dims=train.epochs,train.lr,test_accuracy"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tycho-board-bench-") as tmp:
        store = Path(tmp) / "store"
        synthetic_runs.generate(store, args.runs)
        started = time.perf_counter()
        app = server.app(f"file://{store}", index_path=str(Path(tmp) / "index.sqlite"), sync_seconds=3600)
        print(f"{args.runs} runs indexed in {time.perf_counter() - started:.1f}s")
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            for label, url in REQUESTS:
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    response = client.get(url)
                    times.append(time.perf_counter() - t)
                    assert response.status_code == 200, response.text[:300]
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                print(f"{label}: p50 {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
                      f"({len(response.content) // 1024} KiB)")


if __name__ == "__main__":
    main()
