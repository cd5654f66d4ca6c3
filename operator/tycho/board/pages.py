"""The board's HTML pages: Jinja2 templates (autoescaped: run names, params and messages
are text, never markup) over the same data ``/api/`` serves.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tycho import __version__
from tycho.board import api, state
from tycho.index import query
from tycho.provenance import media
from tycho.reports import text

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["cell"] = text.cell
_env.filters["short"] = lambda v, n=12: (v[:n] + "…") if isinstance(v, str) and len(v) > n + 1 else v
_env.filters["tojson_attr"] = lambda v: json.dumps(v)
_env.globals.update(version=__version__, media=media)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**context), status_code=status_code)


def error(request: Request, status: int, message: str) -> Response:
    return render("error.html", status, title="Not found" if status == 404 else "Cannot show that",
                  message=message, status=status)


def listing_url(args: api.ListingArgs, **changes: Any) -> str:
    """The leaderboard URL of a view, with some of its settings changed."""
    merged = args.model_copy(update=changes)
    params: list[tuple[str, str]] = [("filter", f) for f in merged.filters]
    for key in ("sort", "pipeline", "since"):
        if getattr(merged, key):
            params.append((key, str(getattr(merged, key))))
    if merged.columns:
        params.append(("columns", ",".join(merged.columns)))
    if merged.limit != 50:
        params.append(("limit", str(merged.limit)))
    if merged.offset:
        params.append(("offset", str(merged.offset)))
    if merged.all:
        params.append(("all", "1"))
    if merged.only_changed:
        params.append(("only_changed", "1"))
    return "/?" + urllib.parse.urlencode(params) if params else "/"


def sort_url(args: api.ListingArgs, key: str, current: str) -> str:
    """Clicking a header sorts by it, highest first; clicking again flips the direction."""
    now_key, _, direction = current.partition(":")
    new = f"{key}:asc" if now_key == key and direction == "desc" else key
    return listing_url(args, sort=new, offset=0)


def leaderboard(request: Request, board: state.Board) -> Response:
    from tycho.board import server

    args = server.listing_args(request)
    result = api.listing(board, args)
    pipelines = [r[0] for r in board.index.conn.execute("SELECT DISTINCT pipeline FROM runs ORDER BY pipeline")]
    names = query.names(board.index, limit=400)
    numeric = [c.key for c in result.columns if c.kind in ("metric", "stage_metric", "param")]
    if not numeric:  # the default view: the most common params, then the headline metric
        numeric = [n["name"] for n in names if n["kind"] == "param"][:4]
        best = result.runs[0].headline if result.runs else {}
        numeric += list(best)[:1]
    return (render("leaderboard.html", title="Leaderboard", result=result, args=args, pipelines=pipelines,
                        names=names, listing_url=listing_url, sort_url=sort_url, numeric=numeric,
                        live=any(r.phase == "Running" for r in result.runs), store=board.store.url))


def run(request: Request, board: state.Board) -> Response:
    run_id = board.resolve(request.path_params["run"])
    page = api.run_page(board, run_id)
    tables = {}
    for stage in page.run.stages:
        for a in stage.artifacts:
            if a.media_type in (media.JSON, media.CSV) and (a.size or 0) <= 2_000_000:
                try:
                    tables[a.sha256] = api.artifact_page(board, a.sha256, a.media_type).table
                except (LookupError, OSError):
                    pass
    try:
        lineage = api.lineage_graph(board, run_id)
    except (LookupError, OSError):
        lineage = None
    checks = [c for stage in page.run.stages for c in stage.checks]
    return render("run.html", title=f"Run {run_id}", page=page, run=page.run, tables=tables, lineage=lineage,
                  checks=checks, store=board.store.url)


def log(request: Request, board: state.Board) -> Response:
    run_id = board.resolve(request.path_params["run"])
    stage = request.path_params["stage"]
    body = api.log(board, run_id, stage)
    if body is None:
        raise LookupError(f"this board has no log of {run_id}/{stage} (local logs live in .tycho/logs; "
                          "on a cluster: kubectl logs job/<execution>)")
    return render("text.html", title=f"Log of {stage} — {run_id}", heading=f"log: {stage}", run_id=run_id, body=body)


def record(request: Request, board: state.Board) -> Response:
    run_id = board.resolve(request.path_params["run"])
    stage = request.path_params["stage"]
    doc = api.stage_record(board, run_id, stage)
    return render("text.html", title=f"Record of {stage} — {run_id}", heading=f"provenance record: {stage}",
                  run_id=run_id, body=json.dumps(doc, indent=2, sort_keys=True))


def compare(request: Request, board: state.Board) -> Response:
    from tycho.board import server

    ids = server.run_ids(request, board)
    page = api.compare(board, ids)
    curve_names = api.compare_curves(board, ids, "", "").metrics
    params = next((s for s in page.comparison.sections if s.name == "params"), None)
    group_keys = [r.key for r in params.rows if r.changed] if params else []
    headline = board.index.conn.execute("SELECT headline_name FROM runs WHERE run_id=?", (ids[0],)).fetchone()
    dims = group_keys + ([headline[0]] if headline and headline[0] else [])
    return (render("compare.html", title=f"Compare {len(ids)} runs", page=page, runs=ids,
                        curve_names=curve_names, group_keys=group_keys, dims=dims,
                        everything=request.query_params.get("all") == "1"))


def artifact(request: Request, board: state.Board) -> Response:
    page = api.artifact_page(board, request.path_params["sha256"], request.query_params.get("type") or None)
    return render("artifact.html", title=f"Artifact {page.sha256[:12]}", page=page,
                  name=request.query_params.get("name", ""), run_id=request.query_params.get("run", ""))


def trace(request: Request, board: state.Board) -> Response:
    run_id = board.resolve(request.query_params.get("run", ""))
    result = api.trace(board, run_id, request.query_params.get("metric", ""))
    return render("trace.html", title=f"Trace {result.metric}", trace=result)


def provenance(request: Request, board: state.Board) -> Response:
    return render("provenance.html", title="Provenance", groups=api.groups(board))


def downstream(request: Request, board: state.Board) -> Response:
    digest = request.query_params.get("digest", "").strip()
    result = api.downstream(board, digest) if digest else None
    return render("downstream.html", title="Downstream", digest=digest, result=result)
