"""Run the digits reference stages the way `tycho stage-exec` does.

Each stage is a subprocess with its working directory set to pipelines/digits and the
TYCHO_* contract variables pointing into a private temp directory, so the tests exercise
the scripts exactly as the runner does, without depending on the runner itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIGITS_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "digits"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class StageRun:
    """What a stage subprocess left behind."""

    returncode: int
    stdout: str
    stderr: str
    outputs: Path
    metrics_path: Path
    checks_path: Path

    def output(self, name: str) -> Path:
        return self.outputs / name

    def digest(self, name: str) -> str:
        return sha256_file(self.output(name))

    def json(self, name: str) -> Any:
        return json.loads(self.output(name).read_text(encoding="utf-8"))

    @property
    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        """The checks the stage reported through $TYCHO_CHECKS, by code."""
        if not self.checks_path.exists():
            return {}
        lines = self.checks_path.read_text(encoding="utf-8").splitlines()
        return {c["code"]: c for c in (json.loads(line) for line in lines if line.strip())}

    @property
    def headline(self) -> dict[str, Any]:
        """Last value of each metric name, as the contract defines headline metrics."""
        out: dict[str, Any] = {}
        for line in self.metrics:
            out.update({k: v for k, v in line.items() if k != "step"})
        return out

    def check(self) -> StageRun:
        assert self.returncode == 0, f"stage failed with {self.returncode}:\n{self.stderr[-4000:]}"
        return self


def run_stage(
    workdir: Path,
    stage: str,
    params: dict[str, Any],
    inputs: dict[str, Path] | None = None,
    timeout: float = 900,
) -> StageRun:
    """Run pipelines/digits/<stage>.py under the stage contract inside a fresh directory."""
    workdir.mkdir(parents=True, exist_ok=False)
    in_dir, out_dir = workdir / "inputs", workdir / "outputs"
    in_dir.mkdir()
    out_dir.mkdir()
    for name, source in (inputs or {}).items():
        shutil.copyfile(source, in_dir / name)
    params_path = workdir / "params.json"
    params_path.write_text(json.dumps(params), encoding="utf-8")
    metrics_path = workdir / "metrics.jsonl"
    env = dict(os.environ)
    env.update(
        TYCHO_INPUTS=str(in_dir),
        TYCHO_OUTPUTS=str(out_dir),
        TYCHO_PARAMS=str(params_path),
        TYCHO_METRICS=str(metrics_path),
        TYCHO_CHECKS=str(workdir / "checks.jsonl"),
        TYCHO_STAGE=stage,
        TYCHO_PIPELINE="digits",
        TYCHO_RUN_ID=f"test-{workdir.name}",
        PYTHONHASHSEED="0",
        TF_DETERMINISTIC_OPS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONDONTWRITEBYTECODE="1",
    )
    proc = subprocess.run(
        [sys.executable, f"{stage}.py"], cwd=DIGITS_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    return StageRun(proc.returncode, proc.stdout, proc.stderr, out_dir, metrics_path, workdir / "checks.jsonl")


def predicted_labels(model: Path, splits: Path, split: str, workdir: Path) -> list[int]:
    """The classes `model` predicts for split `split` of `splits`, computed the way the
    stages compute logits (model_io in a process of its own: TensorFlow stays out of pytest)."""
    out = workdir / f"predicted-{split}.json"
    script = (
        "import json, sys, numpy as np\n"
        "from common import read_npz\n"
        "from model_io import configure_tensorflow, load_model, predict_logits\n"
        "configure_tensorflow(seed=0)\n"
        "x = read_npz(sys.argv[2])[f'x_{sys.argv[3]}']\n"
        "labels = predict_logits(load_model(sys.argv[1]), x).argmax(axis=1)\n"
        "open(sys.argv[4], 'w').write(json.dumps([int(v) for v in labels]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="0", TF_DETERMINISTIC_OPS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", script, str(model), str(splits), split, str(out)], cwd=DIGITS_DIR,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    labels: list[int] = json.loads(out.read_text())
    return labels


StageRunner = Callable[..., StageRun]
