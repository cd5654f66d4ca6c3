"""The pinned Go tools the suites run (helm, kubeconform, ...), built from their modules by
tests/cluster/build.sh into ~/.cache/tycho/bin on first use when missing."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPTS = REPO / "tests" / "cluster"
CACHE = Path(os.environ.get("TYCHO_CACHE", Path.home() / ".cache" / "tycho"))


def pinned_versions() -> dict[str, str]:
    """TYCHO_*_VERSION from tests/cluster/env.sh (the single place they are pinned)."""
    text = (CLUSTER_SCRIPTS / "env.sh").read_text()
    return dict(re.findall(r"^(TYCHO_[A-Z_]+_VERSION)=(\S+)", text, re.M))


@functools.cache
def go_tool(name: str) -> Path:
    """helm or kubeconform at the pinned version; built with tests/cluster/build.sh if missing."""
    version = pinned_versions()[f"TYCHO_{name.upper()}_VERSION"]
    binary = CACHE / "bin" / f"{name}-{version}" / name
    if not os.access(binary, os.X_OK):
        if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
            raise FileNotFoundError(f"{binary} is missing and there is no Go toolchain to build it")
        subprocess.run(["bash", str(CLUSTER_SCRIPTS / "build.sh"), name], check=True, timeout=1800)
    return binary
