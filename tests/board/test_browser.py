"""The board in a real headless Chromium (Debian's, driven by Playwright), as a person uses it:
open the leaderboard, sort by a metric, filter by a tag, open a run and see its checks, its
confusion matrix and its HTML report, compare two runs; and a running run's page updating
without a reload.

Every page runs under the board's Content-Security-Policy: a test fails on a JavaScript error,
a console error, or a CSP violation in a board page (reported by each frame's
``securitypolicyviolation`` event). HTML reports run in a sandbox with a CSP of their own; what
that CSP refuses in a report (e.g. scripts from a CDN) is the sandbox at work, not a failure.

Screenshots are saved under .test-artifacts/board/ (TYCHO_TEST_ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.board.conftest import ARTIFACTS, DigitsRuns, Served, serve
from tests.unit.index import runs_fixture as rf
from tycho.board import server
from tycho.provenance import layout, runs, store as store_mod

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
CHROMIUM = os.environ.get("TYCHO_CHROMIUM", "/usr/bin/chromium")
COLUMNS = "release.threshold,gate_threshold,test_accuracy,tag,executed,hits"

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (tests/setup-browser.sh) to install Chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


# Runs in every frame before its own scripts: hands each CSP violation to the test.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => window.tychoCspViolation({
  directive: e.effectiveDirective, blocked: e.blockedURI, document: e.documentURI, policy: e.originalPolicy,
  sample: e.sample}));
"""
REPORT_POLICY = server.SANDBOXED_ARTIFACT["Content-Security-Policy"]


def in_report(url: str) -> bool:
    """A document served as an artifact (an HTML report in its sandbox), not a board page."""
    return "/artifacts/" in url and "/view" not in url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    violations: list[dict[str, str]] = []
    context.expose_binding("tychoCspViolation", lambda source, v: violations.append(v))
    context.add_init_script(REPORT_VIOLATIONS)
    pg = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: console.append(f"{m.text} ({m.location.get('url')})") if m.type == "error"
          and not in_report(m.location.get("url") or "") else None)
    try:
        yield pg
    finally:
        context.close()
    board = [v for v in violations if not in_report(v["document"])]
    assert not board, f"the board's Content-Security-Policy refused: {board}"
    assert all(v["policy"] == REPORT_POLICY for v in violations), violations  # the rest: a report's own
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not console, f"console errors on the page: {console}"


def shot(pg: Page, name: str, full: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=full)
    return path


def column(pg: Page, key: str) -> list[str]:
    return [c.strip() for c in pg.locator(f'#runs-body td[data-key="{key}"]').all_inner_texts()]


def test_leaderboard_sort_filter_run_page_and_compare(page: Page, board: Served, digits: DigitsRuns) -> None:
    pg = page
    pg.goto(board.url + "/")
    assert pg.locator("#runs-body tr").count() == 3  # the all-hits rerun is folded
    shot(pg, "01-leaderboard")

    # choose columns, then sort by a metric by clicking its header (highest first)
    pg.fill("#columns-input", COLUMNS)
    pg.click("#filters button[type=submit]")
    pg.click('th[data-key="gate_threshold"] a')
    pg.wait_for_url("**sort=gate_threshold**")
    assert column(pg, "gate_threshold") == ["0.7", "0.6", "0.5"]
    shot(pg, "02-sorted-by-gate_threshold")
    pg.click('th[data-key="gate_threshold"] a')  # again: lowest first
    pg.wait_for_url("**sort=gate_threshold%3Aasc**")
    assert column(pg, "gate_threshold") == ["0.5", "0.6", "0.7"]

    # filter by a tag: click the chip
    pg.locator("#runs-body a.chip.tag", has_text="candidate").first.click()
    pg.wait_for_url("**filter=tag%3Dcandidate**")
    rows = pg.locator("#runs-body tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-run") == digits.ids["candidate"]
    shot(pg, "03-filtered-by-tag")

    # the run page: stage graph, curves, the confusion matrix
    pg.click(f'#runs-body a[href="/runs/{digits.ids["candidate"]}"]')
    pg.wait_for_selector("#stage-graph")
    assert pg.locator('#stage-graph .node.cached').count() == 6
    assert pg.locator('#stage-graph .node.succeeded').count() == 1  # release ran again
    pg.wait_for_selector('#curves [data-curve-stage="train"] .main-svg')
    shot(pg, "04-run-page", full=False)
    # the checks its stages reported, as `tycho checks` lists them
    listed = json.loads(digits.tycho("checks", digits.ids["candidate"], "--json").stdout)["checks"]
    shown = pg.locator("#checks tr.check").evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert shown == [c["code"] for c in listed] and "TY-CONSTANT" in shown
    image = pg.locator('img[alt="evaluate/confusion_matrix"]')
    image.scroll_into_view_if_needed()
    pg.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
    image.screenshot(path=str(ARTIFACTS / "05-confusion-matrix.png"))
    # the HTML report, rendered in its sandboxed frame under its own CSP
    frame = pg.locator('iframe[title="evaluate/report_html"]')
    frame.scroll_into_view_if_needed()
    report = pg.frame_locator('iframe[title="evaluate/report_html"]')
    report.locator("h1", has_text="Digits: evaluation report").wait_for()
    report.locator("h2", has_text="Calibration").wait_for()
    assert report.locator('img[src^="data:image/png"]').count() >= 2  # confusion matrix, reliability diagram
    frame.screenshot(path=str(ARTIFACTS / "05b-report-in-its-sandbox.png"))
    shot(pg, "06-run-page-full")

    # compare two runs from the leaderboard
    pg.goto(board.url + "/?columns=" + COLUMNS)
    for run_id in (digits.ids["first"], digits.ids["strict"]):
        pg.check(f'input.pick[value="{run_id}"]')
    pg.click("#compare-button")
    pg.wait_for_url("**/compare?runs=**")
    changed = pg.locator('#diff tr.changed[data-key="release.threshold"] td').all_inner_texts()
    assert changed == ["0.5", "0.7"]
    assert pg.locator('#diff tr.same[data-key="train.epochs"]').is_hidden()  # only changed rows by default
    assert "params.threshold: 0.5 -> 0.7" in pg.locator("#why").inner_text()
    pg.wait_for_selector("#compare-curves .main-svg")
    pg.wait_for_selector("#parallel .main-svg")
    shot(pg, "07-compare")


@pytest.fixture
def live_store(tmp_path: Path) -> Iterator[tuple[store_mod.Store, Served]]:
    """A cluster-like run still running: its summary and a growing live metrics file."""
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    summary = rf.summary("live-run", phase="Running")
    summary.stages["train"] = summary.stages["train"].model_copy(update={"phase": "Running", "record": None})
    runs.save(store, summary)
    store.write_bytes(layout.live_metrics_rel("live-run", "train"),
                      "".join(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\n" for i in range(3)).encode())
    env = dict(os.environ, TYCHO_INDEX_DIR=str(tmp_path / "index"))
    with serve(store.url, env, tmp_path / "board.log", tmp_path) as served:
        yield store, served


def test_a_running_run_updates_without_reload(page: Page, live_store: tuple[store_mod.Store, Served]) -> None:
    store, served = live_store
    pg = page
    pg.goto(served.url + "/runs/live-run")
    pg.wait_for_selector('#curves [data-curve-stage="train"] .main-svg')
    pg.evaluate("window.__sameDocument = true")
    points = "document.querySelector('[data-curve-stage=train]').data[0].x.length"
    assert pg.evaluate(points) == 3
    store.write_bytes(layout.live_metrics_rel("live-run", "train"),
                      "".join(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\n" for i in range(8)).encode())
    pg.wait_for_function(f"() => {points} === 8", timeout=15000)  # a function: the CSP allows no eval
    shot(pg, "08-live-run", full=False)
    done = runs.load(store, "live-run")
    stages = {n: s.model_copy(update={"phase": "Succeeded"}) for n, s in done.stages.items()}
    runs.save(store, done.model_copy(update={"phase": "Succeeded", "stages": stages, "finished_at": rf.stamp(9)}))
    pg.wait_for_function("() => document.querySelector('#run-phase').textContent === 'Succeeded'", timeout=15000)
    assert pg.evaluate("window.__sameDocument") is True  # no reload happened
    assert "running" not in (pg.locator('#stage-graph [data-node="train"]').get_attribute("class") or "")
    shot(pg, "09-live-run-finished", full=False)
