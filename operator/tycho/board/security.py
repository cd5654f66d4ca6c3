"""The board as a web service that other sites cannot use: the Host allow-list and the headers
every response carries. ``tycho.board.server.app`` wraps its routes in both (``middleware``).

- Host: Starlette's TrustedHostMiddleware decides (the names come from ``tycho.board.hosts``);
  a refused request gets 400 with the names the board answers and how to add one.
- Headers: a Content-Security-Policy that lets a page load the board's own scripts, styles,
  images and data only (no inline script: the pages' code is in ``static/board.js``), never be
  framed by another page, and send no referrer; ``X-Content-Type-Options: nosniff``. A route
  that sets one of these itself keeps its own: HTML artifacts are framed by the run page in a
  sandbox with a CSP of their own (``server.SANDBOXED_ARTIFACT``). No page may compile code
  (no ``unsafe-eval``): the charts are drawn by plotly.js's strict bundle.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DIRECTIVES = {
    "default-src": "'none'",
    "script-src": "'self'",
    # plotly.js adds <style> elements and style attributes as it draws (styles cannot run code)
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",  # plotly's "download as PNG" makes a data: URL
    "connect-src": "'self'",
    "font-src": "'self'",
    "frame-src": "'self'",  # the sandboxed HTML reports on the run page
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}


def policy(**changes: str) -> str:
    """The board's Content-Security-Policy, with some directives changed."""
    return "; ".join(f"{name} {value}" for name, value in {**DIRECTIVES, **{
        k.replace("_", "-"): v for k, v in changes.items()}}.items())


CONTENT_SECURITY_POLICY = policy()
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_PASSED = "tycho.board.host_allowed"


class SecurityHeaders:
    """Adds ``HEADERS`` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class AllowedHosts:
    """TrustedHostMiddleware over the app; its refusal ("Invalid host header") is replaced by
    one that names the allowed hosts and the flag that adds one."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app, self.hosts = app, list(hosts)
        self.guard = TrustedHostMiddleware(self._passed, allowed_hosts=self.hosts, www_redirect=False)

    async def _passed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_PASSED] = True
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> PlainTextResponse:
        host = Headers(scope=scope).get("host", "")
        return PlainTextResponse(
            f"this board does not answer to Host {host!r}: it answers only to {', '.join(self.hosts)} "
            "(a guard against DNS rebinding). Open it under one of those names, or start it with "
            "`tycho board --allowed-host NAME` (on a cluster: the chart value board.allowedHosts).\n",
            status_code=400)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (the board has no websockets)
            await self.guard(scope, receive, send)
            return
        refused = False

        async def answer(message: Message) -> None:
            nonlocal refused
            if scope.get(_PASSED):
                await send(message)
            elif message["type"] == "http.response.start" and not refused:
                refused = True  # the guard's own response: send ours instead, drop its body
                await self.refusal(scope)(scope, receive, send)

        await self.guard(scope, receive, answer)


def middleware(hosts: Sequence[str]) -> list[Middleware]:
    """Outermost first: every response, a refusal included, carries the headers."""
    return [Middleware(SecurityHeaders), Middleware(AllowedHosts, hosts=hosts)]
