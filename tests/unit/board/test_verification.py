"""The board's "verified" column and badge run ``tycho verify``'s checks on real runs: a
fresh run is verified, a flipped byte in one of its objects turns it red and names the
object, and the leaderboard can filter on the answer."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from tests.support.workspace import Workspace
from tycho.board import server, state, verification
from tycho.provenance import audit


def verifier(ws: Workspace) -> verification.StoreVerifier:
    return verification.StoreVerifier(lambda store: audit.file_keys([ws.root / "signing.key"]))


def test_the_sync_thread_verifies_finished_runs_and_a_flipped_byte_fails_naming_the_object(ws: Workspace) -> None:
    good = ws.run()
    bad = ws.run(pipeline=ws.pipeline(**{"generate.count": "7"}))
    board = state.Board(ws.store_url, index_path=str(ws.root / "index.sqlite"), verifier=verifier(ws))
    try:
        digest = bad.stages["generate"].outputs["numbers"]
        path = ws.object(digest)
        path.chmod(0o644)
        path.write_bytes(path.read_bytes() + b"x")
        assert board.verify_some() == 2
        states = dict(board.writer.conn.execute("SELECT run_id, verified FROM runs"))
        assert states == {good.run_id: "ok", bad.run_id: "failed"}
        assert board.verify_some() == 0  # answered once per version of a summary
        answer = board.verification(bad.run_id, bad)
        assert answer.state == "failed" and any(digest in p for p in answer.problems)
        assert any("records parsed and signature-checked" in c for c in board.verification(good.run_id, good).checks)
    finally:
        board.stop()


def test_the_leaderboard_shows_and_filters_on_verified(ws: Workspace) -> None:
    good = ws.run()
    app = server.app(ws.store_url, index_path=str(ws.root / "index.sqlite"), verifier=verifier(ws), sync_seconds=0.1)
    with TestClient(app, base_url="http://localhost") as client:
        doc = client.get(f"/api/runs/{good.run_id}").json()
        assert doc["verification"]["state"] == "ok" and not doc["verification"]["problems"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = client.get("/api/runs", params={"filter": "verified=ok", "all": "1"}).json()["runs"]
            if rows:
                break
            time.sleep(0.1)
        assert [r["runId"] for r in rows] == [good.run_id]
        page = client.get("/").text
        assert 'class="verified ok"' in page
        assert "verification-problems" not in client.get(f"/runs/{good.run_id}").text


def test_a_board_asked_not_to_verify_says_so(tmp_path: Path, ws: Workspace) -> None:
    summary = ws.run()
    app = server.app(ws.store_url, index_path=str(tmp_path / "i.sqlite"), verifier=verification.NotChecked())
    with TestClient(app, base_url="http://localhost") as client:
        doc = client.get(f"/api/runs/{summary.run_id}").json()
    assert doc["verification"]["state"] == "unchecked"
    assert doc["verification"]["checks"] == ["verification is off for this board"]
