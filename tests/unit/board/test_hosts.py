"""Which Host names a board answers: the names of the address it binds, plus ``--allowed-host``
entries, each checked as a host name (no URL, port or wildcard-for-everything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from starlette.middleware.trustedhost import TrustedHostMiddleware

from tycho.board import hosts


@pytest.mark.parametrize(("bind", "names"), [
    ("127.0.0.1", ["127.0.0.1", "localhost"]),
    ("localhost", ["127.0.0.1", "localhost", "[::1]"]),
    ("::1", ["[::1]", "localhost"]),
    ("0.0.0.0", ["127.0.0.1", "localhost", "[::1]"]),
    ("::", ["127.0.0.1", "localhost", "[::1]"]),
    ("192.168.1.5", ["192.168.1.5"]),
    ("Board.LAN", ["board.lan"]),
])
def test_a_board_answers_the_names_of_the_address_it_binds(bind: str, names: list[str]) -> None:
    assert sorted(hosts.bound_names(bind)) == sorted(names)


@pytest.mark.parametrize(("text", "entry"), [
    ("board.example.com", "board.example.com"),
    ("  Board.Example.COM ", "board.example.com"),
    ("*.example.com", "*.example.com"),
    ("10.0.0.5", "10.0.0.5"),
    ("::1", "[::1]"),
    ("[2001:db8::1]", "[2001:db8::1]"),
    ("tycho-board.tycho-system.svc", "tycho-board.tycho-system.svc"),
])
def test_allowed_host_entries_are_normalised_as_the_host_check_compares_them(text: str, entry: str) -> None:
    assert hosts.pattern(text) == entry


@pytest.mark.parametrize(("text", "says"), [
    ("*", "DNS rebinding"),
    ("", "is empty"),
    ("https://board.example.com", "is a URL"),
    ("board.example.com/path", "is a URL"),
    ("board.example.com:8765", "has a port"),
    ("board example", "is not a host name"),
    ("-board.example.com", "is not a host name"),
    ("a.*.example.com", "is not a host name"),
    ("x" * 300, "is not a host name"),
])
def test_what_is_not_a_host_name_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(hosts.BadHost, match=says.replace(".", r"\.")):
        hosts.pattern(text)


@given(st.one_of(st.text(max_size=80), st.from_regex(r"\A[a-zA-Z0-9.*:\[\]/-]{0,40}\Z")))
def test_any_text_is_an_entry_the_host_check_takes_or_a_bad_host_never_a_crash(text: str) -> None:
    try:
        entry = hosts.pattern(text)
    except hosts.BadHost as bad:
        assert str(bad)
        return
    TrustedHostMiddleware(app=None, allowed_hosts=[entry])  # type: ignore[arg-type]  # a pattern Starlette takes
    assert entry == entry.strip().lower() and entry != "*" and "/" not in entry
    assert hosts.pattern(entry) == entry  # normal form


def test_the_allowed_list_is_the_bound_names_then_the_extra_ones_each_once() -> None:
    assert hosts.allowed("127.0.0.1", ["LOCALHOST", "board.example.com"]) == [
        "127.0.0.1", "localhost", "board.example.com"]


def test_tycho_board_refuses_a_bad_allowed_host_with_exit_2_naming_the_flag(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tycho", "board", "--store", f"file://{tmp_path}", "--json",
                           "--allowed-host", "https://board.example.com"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    error = json.dumps(json.loads(proc.stdout))
    assert "--allowed-host" in error and "give the host name only" in error
    assert "Traceback" not in proc.stderr


def test_tycho_board_refuses_a_bind_address_that_is_no_host_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tycho", "board", "--store", f"file://{tmp_path}", "--json",
                           "--host", "no such host!"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--host" in proc.stdout and "is not a host name" in proc.stdout and "Traceback" not in proc.stderr
