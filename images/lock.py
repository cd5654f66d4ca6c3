#!/usr/bin/env python3
"""Regenerate the images' pinned requirement files from pyproject.toml.

Every Python package an image installs is pinned to an exact version with hashes
(pip install --require-hashes), resolved by `uv pip compile` for the images'
interpreter and platform, within the ranges pyproject.toml allows:

  images/build-requirements.txt   [build-system] requires (setuptools, wheel)
  images/operator/requirements.txt  [project] dependencies + the `board` extra (the chart's
                                    board runs `tycho board` from the operator image)
  images/stage/requirements-cpu.txt dependencies + the `ml` extra
  images/stage/requirements-gpu.txt the same, with tensorflow[and-cuda] in place of
                                    tensorflow-cpu (same version range)
  images/stage/requirements-sbom.txt  the `sbom` extra: cyclonedx-py, which writes the stage
                                    images' SBOM at build time (a throwaway venv)

Existing pins are kept when still allowed (uv prefers the versions in the output
file); pass --upgrade to move everything to the newest allowed versions, or
--upgrade-package NAME for one. tests/deploy/test_images.py checks that the pins
stay within pyproject's ranges.

Usage: python images/lock.py [--upgrade] [--upgrade-package NAME ...] [--uv PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

IMAGES = Path(__file__).resolve().parent
ROOT = IMAGES.parent
# Must match the Python of the images' base (ARG PYTHON_IMAGE in the Dockerfiles).
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
CPU_TF, GPU_TF = "tensorflow-cpu", "tensorflow[and-cuda]"


def requirement_sets(pyproject: dict) -> dict[str, list[str]]:
    """Target file (relative to images/) -> top-level requirements."""
    project = pyproject["project"]
    core = list(project["dependencies"])
    ml = list(project["optional-dependencies"]["ml"])
    board = list(project["optional-dependencies"]["board"])
    gpu_ml = []
    for req in ml:
        name = req.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
        gpu_ml.append(GPU_TF + req[len(name):] if name == CPU_TF else req)
    if gpu_ml == ml:
        raise SystemExit(f"lock.py: the ml extra has no {CPU_TF} requirement to swap for {GPU_TF}")
    return {
        "build-requirements.txt": list(pyproject["build-system"]["requires"]),
        "operator/requirements.txt": core + board,
        "stage/requirements-cpu.txt": core + ml,
        "stage/requirements-gpu.txt": core + gpu_ml,
        "stage/requirements-sbom.txt": list(project["optional-dependencies"]["sbom"]),
    }


def find_uv(explicit: str | None) -> str:
    for candidate in (explicit, shutil.which("uv"), str(ROOT / ".venv" / "bin" / "uv")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("lock.py: uv not found (pip install uv, or pass --uv PATH)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upgrade", action="store_true", help="ignore existing pins")
    ap.add_argument("--upgrade-package", action="append", default=[], metavar="NAME")
    ap.add_argument("--uv", help="uv executable (default: uv on PATH, else .venv/bin/uv)")
    args = ap.parse_args(argv)
    uv = find_uv(args.uv)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for target, reqs in requirement_sets(pyproject).items():
        out = IMAGES / target
        with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as f:
            f.write("\n".join(reqs) + "\n")
            infile = f.name
        cmd = [uv, "pip", "compile", infile, "-o", str(out), "--quiet",
               "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
               "--generate-hashes", "--no-strip-extras",
               "--custom-compile-command", "python images/lock.py"]
        if args.upgrade:
            cmd.append("--upgrade")
        for name in args.upgrade_package:
            cmd += ["--upgrade-package", name]
        print(f"lock.py: {target} <- {len(reqs)} requirements", file=sys.stderr)
        try:
            subprocess.run(cmd, check=True)
        finally:
            os.unlink(infile)
        # uv annotates with the temporary input file's name; make it stable.
        text = out.read_text().replace(infile, "pyproject.toml")
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
