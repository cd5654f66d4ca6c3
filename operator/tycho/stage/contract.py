"""The environment user stage code sees (docs/contracts.md §1).

A pure helper of the wrapper: the child environment, with credentials removed so user
code cannot reach the store, and the contract variables added.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Variables that could let user code reach storage or cloud accounts directly.
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY", "TYCHO_S3_ENDPOINT", "TYCHO_INVOCATION", "TYCHO_STORE",
)


def child_env(base: Mapping[str, str], *, inputs: Path, outputs: Path, params: Path, metrics: Path,
              stage: str, pipeline: str, run_id: str, env: Mapping[str, str],
              secret_env: list[str], imports_hook: Path, imports: Path) -> dict[str, str]:
    """The user process's environment: the caller's, minus credentials, plus the contract."""
    out = {k: v for k, v in base.items() if k not in CREDENTIAL_VARS or k in secret_env}
    out.update(env)
    out.update({
        "TYCHO_INPUTS": str(inputs), "TYCHO_OUTPUTS": str(outputs),
        "TYCHO_PARAMS": str(params), "TYCHO_METRICS": str(metrics),
        "TYCHO_STAGE": stage, "TYCHO_PIPELINE": pipeline, "TYCHO_RUN_ID": run_id,
        "PYTHONHASHSEED": "0", "TF_DETERMINISTIC_OPS": "1", "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": out.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    })
    # `python` in a stage command means the interpreter Tycho itself runs on.
    out["PATH"] = os.path.dirname(sys.executable) + os.pathsep + out.get("PATH", "")
    # Python processes of the stage note the modules they imported (tycho.stage.imports).
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(imports_hook), out.get("PYTHONPATH", "")) if p)
    out["TYCHO_IMPORTS"] = str(imports)
    return out
