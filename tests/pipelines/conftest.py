"""Fixtures for the digits reference pipeline tests (see digits_harness.py)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .digits_chain import run_chain
from .digits_harness import DIGITS_DIR, StageRun, StageRunner, run_stage

DIGITS_MODULES = ("common", "scoring", "model_io", "download", "split", "train", "calibrate", "evaluate", "release")


@pytest.fixture
def stage(tmp_path: Path) -> StageRunner:
    """run(stage, params, inputs) in a new subdirectory of this test's tmp_path."""
    counter = iter(range(1_000_000))

    def run(name: str, params: dict[str, Any], inputs: dict[str, Path] | None = None) -> StageRun:
        return run_stage(tmp_path / f"{name}-{next(counter)}", name, params, inputs)

    return run


@pytest.fixture(scope="session")
def digits_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference `dataset` output (sklearn digits), downloaded once per session."""
    run = run_stage(
        tmp_path_factory.mktemp("digits-download") / "run", "download", {"source": "sklearn-digits"}
    ).check()
    return run.output("dataset")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory, digits_dataset: Path) -> dict[str, StageRun]:
    """The TensorFlow stages chained on the real digits, once per session (digits_chain.py)."""
    return run_chain(tmp_path_factory.mktemp("pipeline"), digits_dataset)


@pytest.fixture
def digits() -> Iterator[Callable[[str], ModuleType]]:
    """Import a module of pipelines/digits in-process (for unit tests of parsers and scores).

    The modules are removed from sys.modules and sys.path afterwards: their generic names
    (common, split, ...) must not leak into other tests.
    """
    sys.path.insert(0, str(DIGITS_DIR))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(DIGITS_DIR))
        for name in DIGITS_MODULES:
            sys.modules.pop(name, None)
