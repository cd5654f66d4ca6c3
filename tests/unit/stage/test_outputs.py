"""What the run phase leaves in out/ is read by processes that hold the store credentials
(publish, the live-metrics sidecar): they must never follow a link the stage put there."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tycho.provenance import layout, store as store_mod
from tycho.stage import follow as follow_mod, supervise, work as work_mod
from tycho.stage.invocation import Invocation


def _invocation(store: str) -> Invocation:
    return Invocation.model_validate({
        "pipeline": {"name": "p", "namespace": "local", "uid": "0", "generation": 1},
        "run_id": "r1", "stage": "train", "invocation_id": "r1/train", "store": store,
        "image": {"reference": "img"}, "command": ["true"], "outputs": [{"name": "model"}],
        "code": {"digest": "0" * 64}, "workdir": "/tmp", "cache_key": "1" * 64})


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "signing.key"
    path.write_text("-----BEGIN PRIVATE KEY----- not for the store\n")
    return path


def test_a_symlinked_output_fails_the_stage_naming_it(tmp_path: Path, secret: Path) -> None:
    work = work_mod.Work(tmp_path / "work")
    work.outputs.mkdir(parents=True)
    (work.outputs / "model").symlink_to(secret)
    with pytest.raises(work_mod.StageFailed, match=r"out/outputs/model is a symlink.*copy the file"):
        work_mod.check_out(_invocation(f"file://{tmp_path / 'store'}"), work)


def test_a_symlinked_folder_deep_in_out_fails_too(tmp_path: Path) -> None:
    work = work_mod.Work(tmp_path / "work")
    (work.outputs / "model" / "variables").mkdir(parents=True)
    (work.outputs / "model" / "variables" / "etc").symlink_to("/etc")
    with pytest.raises(work_mod.StageFailed, match="out/outputs/model/variables/etc is a symlink"):
        work_mod.check_out(_invocation(f"file://{tmp_path / 'store'}"), work)


def test_regular_files_and_folders_pass(tmp_path: Path) -> None:
    work = work_mod.Work(tmp_path / "work")
    (work.outputs / "model").mkdir(parents=True)
    (work.outputs / "model" / "weights.bin").write_bytes(b"\0" * 8)
    work.metrics.write_text('{"loss": 1.0}\n')
    work_mod.check_out(_invocation(f"file://{tmp_path / 'store'}"), work)


def test_the_live_metrics_sidecar_does_not_publish_through_a_symlink(tmp_path: Path, secret: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecar polls while the stage runs: through two polls of a symlinked metrics file
    nothing is published; once the file is a regular one, it is (so the loop did run)."""
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    inv = _invocation(store.url)
    work = work_mod.Work(tmp_path / "work")
    work.out.mkdir(parents=True)
    os.symlink(secret, work.metrics)
    polls = []
    real_poll = follow_mod.MetricsFollower.poll

    def counted(self: follow_mod.MetricsFollower, final: bool = False) -> None:
        real_poll(self, final)
        polls.append(final)

    monkeypatch.setattr(follow_mod.MetricsFollower, "poll", counted)
    stop = threading.Event()
    sidecar = threading.Thread(target=supervise.live, args=(inv, store, work, stop), daemon=True)
    sidecar.start()
    live_rel = layout.live_metrics_rel(inv.run_id, inv.stage, inv.trial)
    try:
        wait_for(lambda: len(polls) >= 2, 10, "two polls of the symlinked metrics file")
        assert not store.exists(live_rel)
        work.metrics.unlink()
        work.metrics.write_text('{"step": 0, "loss": 0.5}\n')
        wait_for(lambda: store.exists(live_rel), 10, "the regular metrics file to be published")
    finally:
        stop.set()
        sidecar.join(5)
    assert store.read_bytes(live_rel) == b'{"step": 0, "loss": 0.5}\n'
    assert secret.read_bytes() not in store.read_bytes(live_rel)


def test_reading_what_the_stage_wrote_refuses_a_symlink(tmp_path: Path, secret: Path) -> None:
    work = work_mod.Work(tmp_path / "work")
    work.out.mkdir(parents=True)
    os.symlink(secret, work.metrics)
    with pytest.raises(OSError):
        work_mod.read_regular(work.metrics)
    work.metrics.unlink()
    work.metrics.write_text('{"step": 0, "loss": 0.5}\n')
    assert work_mod.read_regular(work.metrics, 2) == b'step": 0, "loss": 0.5}\n'
