"""Validate and explain the largest pipeline the API server takes (a chain of
``grammar.MAX_STAGES`` stages listed in reverse order), as the CLI does, and refuse a
10,000-stage one.

    .venv/bin/python benchmarks/large_pipeline.py [STAGES]

Prints seconds for: writing the YAML, ``tycho validate`` (parse + validate, in process),
``explain`` (one scheduler step over an empty store, cache keys for the first stage,
"waits for" for the rest), and refusing 10,000 stages (a bad manifest must be cheap to
refuse: the operator does it on every watch event of it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

from tycho.api import grammar, problems, validation
from tycho.reports import explain


def manifest(n: int) -> str:
    stages = [{"name": f"s{i}", "image": "tycho/stage-cpu:1", "command": ["python", "s.py"], "outputs": ["o"],
               "params": {"i": i}, **({"inputs": [{"name": "i", "from": f"s{i - 1}/o"}]} if i else {})}
              for i in range(n)]
    return yaml.safe_dump({"apiVersion": "tycho.dev/v1alpha1", "kind": "ExperimentPipeline",
                           "metadata": {"name": "long"}, "spec": {"stages": stages[::-1]}}, sort_keys=False)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else grammar.MAX_STAGES
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "s.py").write_text("")
        t0 = time.perf_counter()
        text = manifest(n)
        (root / "long.yaml").write_text(text)
        t1 = time.perf_counter()
        pipeline = validation.load_bytes((root / "long.yaml").read_bytes())
        t2 = time.perf_counter()
        rows = explain.explain(pipeline, f"file://{root / 'store'}", root)
        t3 = time.perf_counter()
    assert len(rows) == n and rows[0].action == "run" and rows[-1].action == "wait"
    print(f"{n} stages: write {t1 - t0:.2f}s, validate {t2 - t1:.2f}s, explain {t3 - t2:.2f}s")
    huge = manifest(10_000).encode()
    t4 = time.perf_counter()
    try:
        validation.load_bytes(huge)
    except problems.InvalidManifest as refused:
        assert [p.path for p in refused.problems] == ["spec.stages"], refused
    else:
        raise SystemExit("a 10,000-stage manifest was accepted")
    print(f"10000 stages: refused in {time.perf_counter() - t4:.2f}s")


if __name__ == "__main__":
    main()
