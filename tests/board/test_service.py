"""A running ``tycho board`` process, asked over raw HTTP as another site's page would through DNS
rebinding (its own name in the Host header, resolved to 127.0.0.1): refused with 400 naming the
hosts it answers; the names it was started with are served, with the security headers."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.board.conftest import Served, serve
from tycho.board import security


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Served]:
    env = dict(os.environ, TYCHO_INDEX_DIR=str(tmp_path / "index"))
    with serve(f"file://{tmp_path / 'store'}", env, tmp_path / "board.log", tmp_path,
               "--allowed-host", "board.example.com", "--no-verify") as served:
        yield served


def get(served: Served, path: str, host: str) -> tuple[int, dict[str, str], str]:
    """GET with an explicit Host header (what a browser sends for the name it resolved)."""
    address = served.url.removeprefix("http://")
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def test_a_running_board_answers_its_names_only(board: Served, tmp_path: Path) -> None:
    port = board.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "board.example.com"):
        status, headers, body = get(board, "/api/runs", host)
        assert status == 200, (host, body)
        for name, value in security.HEADERS.items():
            assert headers[name.lower()] == value
    for host in (f"rebind.attacker.example:{port}", "board.example.com.attacker.example", f"[::1]:{port}"):
        status, headers, body = get(board, "/", host)
        assert status == 400, host
        assert "it answers only to 127.0.0.1, localhost, board.example.com" in body
        assert headers["x-frame-options"] == "DENY"
    assert "answering to 127.0.0.1, localhost, board.example.com" in (tmp_path / "board.log").read_text()
