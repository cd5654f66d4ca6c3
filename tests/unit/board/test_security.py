"""The board as a web service (Starlette's test client over a real local store): it answers only
the Host names it was given (DNS rebinding), every response carries the security headers, HTML
reports keep their own sandbox, and no page holds code the Content-Security-Policy would block."""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.unit.board import board_fixture as bf
from tycho.board import security


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from bf.client(tmp_path)


def artifact(client: TestClient, name: str) -> str:
    doc = client.get("/api/runs/demo-a").json()
    return str(next(a["sha256"] for s in doc["run"]["stages"] for a in s["artifacts"] if a["name"] == name))


def every_route(client: TestClient) -> list[str]:
    """A URL of every route: pages, /api/, static files, artifacts, and answers that are errors."""
    png, trials = artifact(client, "plot"), artifact(client, "trials")
    return ["/", "/?sort=test_accuracy&filter=tag%3Ddemo", "/runs/demo-a", "/runs/demo-a/records/train",
            "/runs/demo-a/logs/train", "/compare?runs=demo-a,demo-b", "/trace?run=demo-a&metric=test_accuracy",
            "/provenance", "/downstream?digest=" + "d" * 64, f"/artifacts/{trials}/view?type=application/json",
            "/runs/nope", "/api/runs", "/api/runs?filter=test_accuracy%20%3E", "/api/names", "/api/runs/demo-a",
            "/api/runs/demo-a/status", "/api/runs/demo-a/series", "/api/runs/demo-a/lineage",
            "/api/compare?runs=demo-a,demo-b", "/api/diff?a=demo-a&b=demo-b", "/api/parallel?dims=train.epochs",
            "/api/groups", "/api/downstream?digest=" + "d" * 64, f"/api/artifacts/{png}", "/api/runs/nope",
            "/static/board.js", "/static/board.css", "/static/favicon.svg", "/static/plotly.min.js",
            "/static/nothing.js", "/healthz", f"/artifacts/{png}", f"/artifacts/{'0' * 64}"]


def directives(csp: str) -> dict[str, str]:
    return dict(d.split(" ", 1) for d in csp.split("; "))


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    statuses = set()
    for url in every_route(client):
        response = client.get(url)
        statuses.add(response.status_code)
        for name, value in security.HEADERS.items():  # every page, those that draw WebGL charts too
            assert response.headers.get(name) == value, (url, name, response.headers.get(name))
    assert statuses == {200, 400, 404}  # errors are answered with the headers too
    csp = directives(security.CONTENT_SECURITY_POLICY)
    assert csp["script-src"] == "'self'" and csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'"


def test_an_html_report_keeps_its_sandbox_and_may_be_framed_by_the_board_only(client: TestClient) -> None:
    report = client.get(f"/artifacts/{artifact(client, 'report')}")
    assert report.status_code == 200 and report.content == bf.HTML
    csp = report.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;") and "frame-ancestors 'self'" in csp
    assert report.headers["x-frame-options"] == "SAMEORIGIN"
    assert report.headers["x-content-type-options"] == "nosniff" and report.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "[::1]:8765", "10.0.0.5"])
def test_a_request_for_another_host_is_refused_naming_the_allowed_ones(client: TestClient, host: str) -> None:
    for url in ("/", "/api/runs", "/static/board.js", "/healthz", f"/artifacts/{'0' * 64}"):
        response = client.get(url, headers={"Host": host})
        assert response.status_code == 400, (url, host)
        assert f"does not answer to Host {host!r}" in response.text
        assert "it answers only to 127.0.0.1, localhost" in response.text and "--allowed-host NAME" in response.text
        assert "demo-a" not in response.text
        assert response.headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY


def test_the_bound_names_are_served_on_any_port(client: TestClient) -> None:
    for host in ("127.0.0.1", "127.0.0.1:8765", "localhost:9000", "LOCALHOST"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_replace_the_defaults_and_wildcards_cover_subdomains(tmp_path: Path) -> None:
    for c in bf.client(tmp_path, allowed_hosts=["board.example.com", "*.corp.example"],
                       url="http://board.example.com"):
        assert c.get("/runs/demo-a").status_code == 200
        assert c.get("/api/runs", headers={"Host": "tycho.corp.example:443"}).status_code == 200
        for refused in ("localhost", "127.0.0.1", "example.com", "corp.example.evil"):
            response = c.get("/api/runs", headers={"Host": refused})
            assert response.status_code == 400 and "board.example.com, *.corp.example" in response.text


class _Page(html.parser.HTMLParser):
    """What a page holds that a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.blocked += [f"<{tag} {n}=...>" for n in names if n.startswith("on") or n == "style"]
        if tag == "style":
            self.blocked.append("<style>")
        if tag == "script":
            self._in_script = "src" not in names and names.get("type") != "application/json"
            if "src" in names:
                self.scripts.append(str(names["src"]))
        for n in ("href", "src", "action"):
            if (names.get(n) or "").lower().startswith("javascript:"):
                self.blocked.append(f"<{tag} {n}=javascript:...>")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.blocked.append(f"inline script {data.strip()[:60]!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_no_page_holds_inline_script_or_style_and_scripts_come_from_the_board(client: TestClient) -> None:
    pages = [u for u in every_route(client) if not u.startswith(("/api/", "/static/", "/healthz", "/artifacts/0",
                                                                   f"/artifacts/{artifact(client, 'plot')}"))]
    seen_scripts = set()
    for url in pages:
        response = client.get(url)
        assert response.headers["content-type"].startswith("text/html"), url
        page = _Page()
        page.feed(response.text)
        assert page.blocked == [], url
        seen_scripts.update(page.scripts)
    assert seen_scripts == {"/static/plotly.min.js", "/static/board.js"}
