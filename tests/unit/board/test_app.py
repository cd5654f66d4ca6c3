"""The board's app over a real local store, through HTTP (Starlette's test client): every
page and its /api/ twin, artifacts with media types, and user text shown as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.unit.board import board_fixture as bf
from tests.unit.index import runs_fixture as rf
from tycho.provenance import store as store_mod


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from bf.client(tmp_path)


def test_api_runs_sorts_filters_and_chooses_columns(client: TestClient) -> None:
    doc = client.get("/api/runs", params={"sort": "test_accuracy", "columns": "train.epochs,test_accuracy"}).json()
    assert [r["runId"] for r in doc["runs"]] == ["demo-b", "demo-a"]
    assert doc["runs"][0]["values"] == {"train.epochs": 30, "test_accuracy": 0.97}
    doc = client.get("/api/runs", params={"filter": "tag=demo AND test_accuracy<0.95"}).json()
    assert [r["runId"] for r in doc["runs"]] == ["demo-a"]
    bad = client.get("/api/runs", params={"filter": "test_accuracy >"})
    assert bad.status_code == 400 and "expected" in bad.json()["error"]


def test_leaderboard_keeps_its_view_in_the_url_and_shows_user_text_as_text(client: TestClient) -> None:
    page = client.get("/", params={"sort": "test_accuracy:asc", "columns": "test_accuracy,tag"})
    assert page.status_code == 200
    body = page.text
    assert body.index("demo-a") < body.index("demo-b")  # ascending
    assert bf.EVIL not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="/?sort=test_accuracy&amp;columns=test_accuracy%2Ctag"' in body  # clicking flips to descending


def test_run_page_shows_stages_figures_and_reports_and_its_api_twin(client: TestClient) -> None:
    page = client.get("/runs/demo-a")
    assert page.status_code == 200
    assert 'class="node succeeded"' in page.text and "stage graph" in page.text
    assert '<img src="/artifacts/' in page.text and 'sandbox="allow-scripts"' in page.text
    doc = client.get("/api/runs/demo-a").json()
    kinds = {a["name"]: a["mediaType"] for s in doc["run"]["stages"] for a in s["artifacts"]}
    assert kinds["plot"] == "image/png" and kinds["report"] == "text/html"
    # a summary written without records (this fixture's) does not verify, and says why
    assert doc["verification"]["state"] == "failed" and doc["verification"]["problems"]


def test_run_page_lists_the_checks_its_stages_reported(client: TestClient) -> None:
    page = client.get("/runs/demo-a").text
    assert 'href="#checks">1 check reported</a>' in page
    row = page[page.index('<tr class="check warn" data-code="TY-TEMPERATURE-BOUND">'):]
    row = row[:row.index("</tr>")]
    assert "<td>evaluate</td>" in row and "T is at its lower bound 0.05" in row and "bound=0.05" in row
    (check,) = [c for s in client.get("/api/runs/demo-a").json()["run"]["stages"] for c in s["checks"]]
    assert check["code"] == "TY-TEMPERATURE-BOUND" and check["stage"] == "evaluate"
    assert 'id="checks"' not in client.get("/runs/demo-b").text  # no checks, no section


def test_artifacts_are_served_with_their_media_type_and_html_is_sandboxed(client: TestClient) -> None:
    doc = client.get("/api/runs/demo-a").json()
    by_name = {a["name"]: a["sha256"] for s in doc["run"]["stages"] for a in s["artifacts"]}
    png = client.get(f"/artifacts/{by_name['plot']}")
    assert png.headers["content-type"] == "image/png" and png.content == bf.PNG
    html = client.get(f"/artifacts/{by_name['report']}")
    assert html.headers["content-type"].startswith("text/html")
    assert html.headers["content-security-policy"].startswith("sandbox")
    assert client.get(f"/artifacts/{'0' * 64}").status_code == 404


def test_compare_trace_provenance_and_downstream_pages(client: TestClient) -> None:
    cmp = client.get("/api/compare", params={"runs": "demo-a,demo-b"}).json()
    params = next(s for s in cmp["comparison"]["sections"] if s["name"] == "params")
    assert [r["key"] for r in params["rows"] if r["changed"]] == ["train.epochs"]
    assert client.get("/compare", params={"runs": "demo-a,demo-b"}).status_code == 200
    trace = client.get("/api/trace", params={"run": "demo-a", "metric": "test_accuracy"}).json()
    assert trace["stage"] == "evaluate" and trace["value"] == 0.91
    assert client.get("/provenance").status_code == 200
    down = client.get("/api/downstream", params={"digest": "d" * 64}).json()
    assert {r["runId"] for r in down["runs"]} == {"demo-a", "demo-b"}
    par = client.get("/api/parallel", params={"dims": "train.epochs,test_accuracy", "trials": "1"}).json()
    assert dict(zip(par["runs"], par["values"]["train.epochs"])) == {"demo-a": 10, "demo-b": 30}
    assert len(par["trials"]) == 2


def test_unknown_runs_are_404_as_json_and_as_pages(client: TestClient) -> None:
    assert client.get("/api/runs/nope").status_code == 404
    page = client.get("/runs/nope")
    assert page.status_code == 404 and "no run" in page.text


def test_assets_come_from_the_package(client: TestClient) -> None:
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert client.get("/static/board.js").status_code == 200
    assert client.get("/healthz").text == "ok"
    for path in ("/", "/runs/demo-a", "/compare?runs=demo-a,demo-b"):
        assert "http://" not in client.get(path).text.replace("http://www.w3.org", "")  # nothing from elsewhere


def test_new_runs_appear_without_restarting(client: TestClient, tmp_path: Path) -> None:
    import time

    rf.save(store_mod.Store(f"file://{tmp_path / 'store'}"), rf.summary("demo-new", minute=9, accuracy=0.99))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.get("/api/runs").json()["runs"][0]["runId"] == "demo-new":
            return
        time.sleep(0.1)
    raise AssertionError("the board never listed the new run")
