"""The team's view over real digits runs: one store for the whole package (session scope),
made by the CLI as a user would, and a real ``tycho board`` process serving it.

Three runs with different params: a full small run, then two that change only the release
gate (so only ``release`` executes again: seconds, not minutes), one of them tagged
``candidate``; then an all-hits rerun of the first (folded into it in listings).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import free_port

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "pipelines" / "digits.yaml"
TYCHO = str(Path(sys.executable).with_name("tycho"))
SMALL = ["--set", "train.epochs=3", "--set", "tune.epochs=3", "--set", "tune.sweep.trials=2",
         "--set", "tune.sweep.parallelism=2"]
ARTIFACTS = Path(os.environ.get("TYCHO_TEST_ARTIFACTS", REPO / ".test-artifacts")) / "board"


@dataclasses.dataclass
class DigitsRuns:
    workdir: Path
    store: str
    env: dict[str, str]
    ids: dict[str, str]
    """first, candidate, strict, rerun -> run id"""

    def tycho(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([TYCHO, *args, "--store", self.store], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=900)
        if check and proc.returncode != 0:
            raise AssertionError(f"tycho {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsRuns:
    workdir = tmp_path_factory.mktemp("board-digits")
    env = dict(os.environ, TYCHO_INDEX_DIR=str(workdir / "index"), COLUMNS="200")
    runs = DigitsRuns(workdir, f"file://{workdir / 'store'}", env, {})
    tagged = workdir / "digits-candidate.yaml"
    tagged.write_text(MANIFEST.read_text().replace("path: digits", f"path: {MANIFEST.parent / 'digits'}")
                      .replace("tags: [reference, digits, cnn]", "tags: [reference, digits, cnn, candidate]"))
    plan = [("first", MANIFEST, "0.5"), ("candidate", tagged, "0.6"), ("strict", MANIFEST, "0.7"),
            ("rerun", MANIFEST, "0.5")]
    for name, manifest, threshold in plan:
        out = runs.tycho("run", str(manifest), "--json", *SMALL, "--set", f"release.threshold={threshold}").stdout
        runs.ids[name] = json.loads(out)["runId"]
    return runs


@dataclasses.dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve(store: str, env: dict[str, str], log: Path, cwd: Path, *flags: str) -> Iterator[Served]:
    """``tycho board`` as a user starts it (with ``flags``); stopped (by its PID) when the test is done."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([TYCHO, "board", "--store", store, "--port", str(port), *flags], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"tycho board exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"tycho board did not answer: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield Served(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def board(digits: DigitsRuns) -> Iterator[Served]:
    with serve(digits.store, digits.env, digits.workdir / "board.log", digits.workdir) as served:
        yield served


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())
