"""Wait for a condition instead of sleeping, and pick a free port: what every suite that
talks to a process or a server needs."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition", interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def stays(check: Callable[[], Any], seconds: float, what: str, interval: float = 0.2) -> None:
    """``check`` holds at every look for ``seconds`` (what must NOT happen after an event:
    watched the whole window, not sampled once after a sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        if not check():
            raise AssertionError(f"{what} stopped holding")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
