"""GPU check (run on a machine with an NVIDIA GPU and PyTorch; not a test): a tiny CUDA
stage through the local runner, then the execution-environment facts its record holds,
then ``reproduce`` of a deterministic and a non-deterministic variant.

    .venv/bin/python benchmarks/gpu_facts.py            # uses a temporary folder
    .venv/bin/python benchmarks/gpu_facts.py --keep DIR  # keep the store to look at
    .venv/bin/python benchmarks/gpu_facts.py --python /usr/bin/python3   # torch lives in another Python

Prints JSON: the recorded facts (node/host, CPU, accelerators with driver and CUDA
versions, torch version/CUDA build/determinism switches, determinism variables), and for
each variant whether reproduce was bit-identical, bytes differing, and facts differing.
Needs the stage's Python to import torch with CUDA (JAX is used when torch is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STAGE = '''
import json, os
params = json.load(open(os.environ["TYCHO_PARAMS"]))
out = os.path.join(os.environ["TYCHO_OUTPUTS"], "weights")
try:
    import torch
    torch.manual_seed(0)
    if params["deterministic"]:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    x = torch.randn(4096, 256, device="cuda")
    w = torch.randn(256, 256, device="cuda", requires_grad=True)
    for _ in range(20):
        loss = (x @ w).square().mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.01 * w.grad
            w.grad.zero_()
    if not params["deterministic"]:  # atomics: the summation order changes run to run
        acc = torch.zeros(64, 256, device="cuda")
        acc.index_add_(0, torch.randint(0, 64, (4096,), device="cuda"), x)
        w = w + acc.sum() * 1e-6
    open(out, "wb").write(w.detach().cpu().numpy().tobytes())
except ImportError:
    import jax, jax.numpy as jnp
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (4096, 256)); w = jax.random.normal(key, (256, 256))
    for _ in range(20):
        w = w - 0.01 * jax.grad(lambda w: ((x @ w) ** 2).mean())(w)
    open(out, "wb").write(bytes(jax.device_get(w).tobytes()))
with open(os.environ["TYCHO_METRICS"], "a") as m:
    m.write(json.dumps({"done": 1}) + "\\n")
'''

MANIFEST = '''apiVersion: tycho.dev/v1alpha1
kind: ExperimentPipeline
metadata: {name: gpu-facts}
spec:
  code: {path: code}
  stages:
    - name: train
      image: local
      command: [PYTHON, stage.py]
      params: {deterministic: DETERMINISTIC}
      env:
        - {name: CUBLAS_WORKSPACE_CONFIG, value: ":4096:8"}
      outputs: [weights]
'''


def tycho(*args: str, cwd: Path) -> dict[str, object]:
    exe = Path(sys.executable).with_name("tycho")
    proc = subprocess.run([str(exe), *args, "--json"], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"tycho {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--python", default="python",
                        help="interpreter that runs the stage (default: Tycho's own; give one that imports torch)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tycho-gpu-"))
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / "code" / "stage.py").write_text(STAGE)
    report: dict[str, object] = {}
    for variant in ("deterministic", "nondeterministic"):
        manifest = root / f"{variant}.yaml"
        manifest.write_text(MANIFEST.replace("PYTHON", json.dumps(args.python))
                            .replace("DETERMINISTIC", "true" if variant == "deterministic" else "false")
                            .replace("gpu-facts", f"gpu-{variant[:5]}"))
        run = tycho("run", str(manifest), cwd=root)
        stage = run["stages"]["train"]  # type: ignore[index]
        record = json.loads((root / ".tycho" / "store" / stage["record"]).read_text())
        env = next(b for b in record["predicate"]["runDetails"]["byproducts"] if b["name"] == "environment")
        facts = json.loads((root / ".tycho" / "store" / "objects" / "sha256" / env["digest"]["sha256"]).read_text())
        again = tycho("reproduce", str(run["runId"]), cwd=root)
        weights = next(o for o in again["outputs"])  # type: ignore[attr-defined]
        report[variant] = {"runId": run["runId"], "facts": facts["execution"],
                           "reproduce": {"identical": again["identical"], "bytesDiffering": weights["bytesDiffering"],
                                         "size": weights["sizeRecorded"], "environmentDiffers": again["environment"]}}
    verify = tycho("verify", "--all", cwd=root)
    report["verify"] = {"ok": verify["ok"], "problems": verify["problems"]}
    print(json.dumps(report, indent=2))
    if not args.keep:
        print(f"(work folder {root} left for inspection)", file=sys.stderr)
    os.sync()


if __name__ == "__main__":
    main()
