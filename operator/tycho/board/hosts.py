"""Which ``Host`` headers the board answers: the names of the address it binds, plus the names
an operator adds (``tycho board --allowed-host``, the chart's ``board.allowedHosts``).

Answering any Host would let a page on another site read the board through DNS rebinding: the
attacker's name resolves to 127.0.0.1, and the browser then sends the board requests that are
same-origin for the attacker's page. Pure functions with the standard library only, so that the
CLI checks ``--allowed-host`` without importing the web stack; ``tycho.board.security`` enforces
the list on every request.
"""

from __future__ import annotations

import ipaddress
import re

LOOPBACK = ("127.0.0.1", "localhost")
"""What a board bound to 127.0.0.1 (the default) answers to: the address and its usual name."""

ALL_INTERFACES = ("0.0.0.0", "::", "")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


class BadHost(ValueError):
    """A host name that is not one: the message says what is wrong and how to write it."""


def _ip(text: str) -> str | None:
    """The Host-header form of an IP address (IPv6 in brackets), or None if ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def pattern(text: str) -> str:
    """An allowed-host entry as the Host check compares it: a DNS name (``*.example.com`` allows
    its subdomains), an IPv4 address, or an IPv6 address (with or without brackets); no scheme,
    port or path. Raises BadHost naming the problem."""
    value = text.strip().lower()
    if not value:
        raise BadHost("is empty: give a host name such as board.example.com")
    if value == "*":
        raise BadHost("'*' would answer every Host header and let other sites read the board through DNS "
                      "rebinding: name the hosts people use to reach it")
    if "://" in value or "/" in value:
        raise BadHost(f"{text!r} is a URL: give the host name only (board.example.com, not https://...)")
    ip = _ip(value)
    if ip is not None:
        return ip
    if ":" in value:
        raise BadHost(f"{text!r} has a port: give the host name only (the board answers it on any port)")
    if len(value) > 253 or not _NAME.match(value):
        raise BadHost(f"{text!r} is not a host name: letters, digits, '-' and dots (e.g. board.example.com, "
                      "*.example.com, 10.0.0.5)")
    return value


def bound_names(bind: str) -> list[str]:
    """The Host names a board bound to ``bind`` answers without being told more: the address
    itself and, for a loopback address, ``localhost``. Bound to every interface (0.0.0.0, ::) it
    cannot know the names people will use, so it answers the loopback names only (what
    ``kubectl port-forward`` sends) until ``--allowed-host`` names more."""
    host = bind.strip().lower()
    if host in ALL_INTERFACES:
        return [*LOOPBACK, "[::1]"]
    ip = _ip(host)
    if ip is not None:
        loopback = ipaddress.ip_address(ip.strip("[]")).is_loopback
        return [ip, "localhost"] if loopback else [ip]
    if host == "localhost":
        return [*LOOPBACK, "[::1]"]
    return [pattern(host)]


def allowed(bind: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The bound names, then the extra ones (checked with ``pattern``), each once."""
    return list(dict.fromkeys([*bound_names(bind), *(pattern(e) for e in extra)]))
