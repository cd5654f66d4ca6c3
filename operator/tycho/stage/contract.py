"""The environment user stage code sees (docs/contracts.md §1).

A pure helper of the wrapper: the child environment is built from an allow-list, so
user code never sees the wrapper's store credentials or anything else of the caller's
environment it did not ask for, plus the contract variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PASS_THROUGH = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "TMPDIR",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
)
"""The only variables of the caller's environment a stage sees (an allow-list: the
caller's credentials, tokens and settings never reach stage code): where programs and
the home directory are, the locale, and which GPUs the caller lets it use."""


def child_env(base: Mapping[str, str], *, inputs: Path, outputs: Path, params: Path, metrics: Path,
              stage: str, pipeline: str, run_id: str, env: Mapping[str, str],
              secret_env: list[str], imports_hook: Path, imports: Path, frameworks: Path,
              checks: Path) -> dict[str, str]:
    """The user process's environment: the allow-listed part of the caller's, the stage's
    declared env (literal values, and Secret-backed ones by name from the caller's
    environment), and the contract."""
    out = {k: base[k] for k in PASS_THROUGH if k in base}
    out.update({k: base[k] for k in secret_env if k in base})
    out.update(env)
    out.update({
        "TYCHO_INPUTS": str(inputs), "TYCHO_OUTPUTS": str(outputs),
        "TYCHO_PARAMS": str(params), "TYCHO_METRICS": str(metrics), "TYCHO_CHECKS": str(checks),
        "TYCHO_STAGE": stage, "TYCHO_PIPELINE": pipeline, "TYCHO_RUN_ID": run_id,
        "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1", "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": out.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    })
    # `python` in a stage command means the interpreter Tycho itself runs on.
    out["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), out.get("PATH", "/usr/bin:/bin")) if p)
    # Python processes of the stage note the modules they imported (tycho.stage.imports).
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(imports_hook), env.get("PYTHONPATH", "")) if p)
    out["TYCHO_IMPORTS"] = str(imports)
    out["TYCHO_FRAMEWORKS"] = str(frameworks)
    return out
