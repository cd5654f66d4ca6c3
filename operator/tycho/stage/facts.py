"""Where a stage ran, as recorded fact: host or node, CPU, accelerators with driver and
CUDA versions, framework versions and determinism settings.

Recorded in the record's ``environment`` byproduct, never in the cache key: two machines
that produce the same bits share a cache, and when their bits differ ``tycho reproduce``
says which of these facts differ (``differences``). GPUs are read with NVML when
``pynvml`` is importable, else with ``nvidia-smi`` on PATH (the tests put a fake one
there); with neither, no accelerator is recorded. Framework facts (torch/jax/tensorflow
versions, CUDA builds, deterministic-algorithm switches) come from inside the stage's
own Python processes (``tycho.stage.imports`` hook), which is where they are in force.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping
from typing import Any

DETERMINISM_VARS = (
    "PYTHONHASHSEED", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_LAUNCH_BLOCKING", "XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION", "CUDA_VISIBLE_DEVICES",
)
"""Variables that change numerical results or their determinism: recorded as set."""
NODE_ENV = "TYCHO_NODE_NAME"
"""Set from the pod's spec.nodeName on a cluster."""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvml() -> list[dict[str, str]] | None:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: no GPU facts
        return None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            found.append({"name": _text(pynvml.nvmlDeviceGetName(handle)), "driver": driver,
                          "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}",
                          "uuid": _text(pynvml.nvmlDeviceGetUUID(handle))})
        return found
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvidia_smi() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        rows = subprocess.run([exe, "--query-gpu=name,driver_version,uuid", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=True).stdout
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    found = []
    for row in rows.splitlines():
        parts = [p.strip() for p in row.split(",")]
        if len(parts) >= 3 and parts[0]:
            found.append({"name": parts[0], "driver": parts[1], "cuda": cuda.group(1) if cuda else "",
                          "uuid": parts[2]})
    return found


def accelerators() -> list[dict[str, str]]:
    """Visible NVIDIA GPUs: name, driver, CUDA (driver API) version, uuid."""
    found = _nvml()
    return found if found is not None else _nvidia_smi()


def collect(env: Mapping[str, str], frameworks: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The facts of this machine, with the determinism variables of the stage's ``env``."""
    return {
        "host": socket.gethostname(),
        "node": os.environ.get(NODE_ENV) or None,
        "platform": f"{platform.system().lower()}-{platform.machine()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpuCount": os.cpu_count() or 0,
        "accelerators": accelerators(),
        "frameworks": dict(frameworks or {}),
        "determinism": {k: env[k] for k in DETERMINISM_VARS if k in env},
    }


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """How two fact sets differ, one line per fact: ``accelerators[0].name: A10 -> H200``.
    The host name is left out (every reproduction runs on some host)."""
    out: list[str] = []
    keys = sorted(set(old) | set(new), key=str)
    for key in keys:
        if not prefix and key in ("host", "uuid"):
            continue
        a, b = old.get(key), new.get(key)
        path = f"{prefix}.{key}" if prefix else str(key)
        if a == b or key == "uuid":
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, path)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                if isinstance(x, Mapping) and isinstance(y, Mapping):
                    out += differences(x, y, f"{path}[{i}]")
                elif x != y:
                    out.append(f"{path}[{i}]: {x} -> {y}")
        else:
            out.append(f"{path}: {_show(a)} -> {_show(b)}")
    return out


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(str(v.get("name", v)) if isinstance(v, Mapping) else str(v) for v in value) or "(none)"
    return str(value)
