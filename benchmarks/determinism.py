"""Training time with TensorFlow op determinism on vs. off (ratio), via the real runner.

Builds a pipeline from pipelines/digits.yaml keeping download, split and train, plus a
copy of train with ``deterministic: false``; runs it in fresh stores (so nothing is a
cache hit) and compares the two train stages' wall times from their provenance records.
Usage: python benchmarks/determinism.py [--repeat 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def seconds(record: dict) -> float:  # type: ignore[type-arg]
    meta = record["predicate"]["runDetails"]["metadata"]
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(meta["finishedOn"]) - parse(meta["startedOn"])).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    doc = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    stages = {s["name"]: s for s in doc["spec"]["stages"]}
    train = stages["train"]
    train["params"]["epochs"] = args.epochs
    fast = copy.deepcopy(train)
    fast["name"] = "train-nondet"
    fast["params"]["deterministic"] = False
    doc["spec"]["stages"] = [stages["download"], stages["split"], train, fast]
    doc["spec"]["maxParallel"] = 1  # one at a time: the two trainings must not share the cores
    doc["spec"]["code"]["path"] = str(REPO / "pipelines" / "digits")
    exe = Path(sys.executable).with_name("tycho")
    det, nondet = [], []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "bench.yaml"
        manifest.write_text(yaml.safe_dump(doc))
        for i in range(args.repeat):
            store = f"file://{tmp}/store-{i}"
            proc = subprocess.run([str(exe), "run", str(manifest), "--json", "--store", store], capture_output=True,
                                  text=True, check=True, cwd=tmp)
            result = json.loads(proc.stdout)
            for name, bucket in (("train", det), ("train-nondet", nondet)):
                rec = json.loads(Path(result["stages"][name]["record"].removeprefix("file://")).read_text())
                bucket.append(seconds(rec))
    d, n = min(det), min(nondet)
    print(f"epochs                      {args.epochs}")
    print(f"train, deterministic        {d:6.1f} s (best of {args.repeat}; includes ~TF import)")
    print(f"train, non-deterministic    {n:6.1f} s")
    print(f"ratio deterministic/non     {d / n:6.2f}")


if __name__ == "__main__":
    main()
