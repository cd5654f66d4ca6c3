"""Execution-environment facts. No GPU here: a fake ``nvidia-smi`` on PATH prints what the
real one prints on an H200 machine (format of driver 580 / CUDA 13); the real thing is
checked by benchmarks/gpu_facts.py on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tycho.stage import facts

FAKE = """#!/bin/sh
if [ "$1" = "--query-gpu=name,driver_version,uuid" ]; then
  echo "NVIDIA H200, 580.95.05, GPU-11111111-2222-3333-4444-555555555555"
  exit 0
fi
cat <<'BANNER'
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: 13.0     |
+-----------------------------------------------------------------------------------------+
BANNER
"""


@pytest.fixture
def fake_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "nvidia-smi"
    exe.write_text(FAKE)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(facts, "_nvml", lambda: None)  # pynvml may be installed; the fake is nvidia-smi


def test_a_visible_gpu_is_recorded_with_driver_and_cuda(fake_gpu: None) -> None:
    found = facts.collect({"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONHASHSEED": "0", "OTHER": "x"},
                          {"torch": {"version": "2.11.0", "deterministicAlgorithms": True}})
    assert found["accelerators"] == [{"name": "NVIDIA H200", "driver": "580.95.05", "cuda": "13.0",
                                      "uuid": "GPU-11111111-2222-3333-4444-555555555555"}]
    assert found["determinism"] == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONHASHSEED": "0"}
    assert found["frameworks"]["torch"]["deterministicAlgorithms"] is True
    assert found["cpu"] and found["cpuCount"] >= 1


def test_no_gpu_tool_means_no_accelerator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(facts, "_nvml", lambda: None)
    assert facts.accelerators() == []


def test_differences_name_each_fact_that_changed() -> None:
    a = {"host": "a", "cpu": "X",
         "accelerators": [{"name": "NVIDIA A10", "driver": "550", "cuda": "12.4", "uuid": "1"}],
         "frameworks": {"torch": {"version": "2.10", "deterministicAlgorithms": True}}, "determinism": {}}
    b = {"host": "b", "cpu": "X",
         "accelerators": [{"name": "NVIDIA H200", "driver": "580", "cuda": "13.0", "uuid": "2"}],
         "frameworks": {"torch": {"version": "2.11", "deterministicAlgorithms": False}},
         "determinism": {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}}
    assert facts.differences(a, b) == [
        "accelerators[0].cuda: 12.4 -> 13.0", "accelerators[0].driver: 550 -> 580",
        "accelerators[0].name: NVIDIA A10 -> NVIDIA H200", "determinism.CUBLAS_WORKSPACE_CONFIG: (none) -> :4096:8",
        "frameworks.torch.deterministicAlgorithms: True -> False", "frameworks.torch.version: 2.10 -> 2.11"]
