"""The environment user stage code sees (docs/contracts.md §1) and the metrics it writes.

Pure helpers used by the wrapper: building the child environment (credentials removed,
so user code cannot reach the store) and folding the metrics JSON-lines file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Variables that could let user code reach storage or cloud accounts directly.
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY", "TYCHO_S3_ENDPOINT", "TYCHO_INVOCATION",
)


def child_env(base: Mapping[str, str], *, inputs: Path, outputs: Path, params: Path, metrics: Path,
              stage: str, pipeline: str, run_id: str, env: Mapping[str, str],
              secret_env: list[str]) -> dict[str, str]:
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
    return out


def read_metrics(path: Path) -> dict[str, float]:
    """Last value of each numeric metric in a JSON-lines file (bad lines are skipped)."""
    last: dict[str, float] = {}
    if not path.exists():
        return last
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        for name, value in item.items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                last[name] = float(value)
    return last
