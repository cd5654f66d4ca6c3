"""The board's ASGI app (Starlette): URL parsing, JSON under ``/api/``, HTML pages, artifacts
and the shipped static files; ``serve`` runs it with uvicorn.

Every page has a JSON twin under ``/api/`` serving the same data (``tycho.board.api``).
Assets come from the package only (``static/``): the board works offline. Its charts are
drawn by plotly.js's strict bundle (``static/plotly.min.js``: the npm package
``plotly.js-strict-dist-min``, which compiles no code at run time, so the pages' CSP needs no
``unsafe-eval``; MIT, ``static/plotly.LICENSE``). Artifacts are served with
their media type; HTML artifacts (stage reports) get a ``sandbox`` Content-Security-Policy
so their scripts run in an opaque origin, never as the board. Every response carries the
board's security headers and every request must name an allowed Host (``tycho.board.security``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tycho.board import api, hosts, pages, security, state, verification
from tycho.index import query
from tycho.provenance import media, store as store_mod

STATIC = Path(__file__).resolve().parent / "static"
# An HTML (or unknown) artifact runs in a sandbox (an opaque origin: its scripts never act as the
# board) and may be framed by the board's own run page only.
SANDBOXED_ARTIFACT = {
    "Content-Security-Policy": "sandbox allow-scripts; default-src 'self' 'unsafe-inline' data:; "
                               "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
Handler = Callable[[Request], Awaitable[Response]]


def listing_args(request: Request) -> api.ListingArgs:
    q = request.query_params
    columns = [c.strip() for item in q.getlist("columns") for c in item.split(",") if c.strip()]
    per_page = int(q.get("limit") or 50)
    page = int(q.get("page") or 1)
    offset = int(q.get("offset") or (page - 1) * per_page)
    return api.ListingArgs(filters=[f for f in q.getlist("filter") if f.strip()], sort=q.get("sort", ""),
                           columns=columns, pipeline=q.get("pipeline", ""), since=q.get("since", ""),
                           limit=per_page, offset=offset, all=q.get("all") in ("1", "true", "on"),
                           only_changed=q.get("only_changed") in ("1", "true", "on"))


def run_ids(request: Request, board: state.Board) -> list[str]:
    raw = [r.strip() for item in request.query_params.getlist("runs") for r in item.split(",") if r.strip()]
    return [board.resolve(r) for r in dict.fromkeys(raw)]


def _json(model: Any) -> JSONResponse:
    if isinstance(model, pydantic.BaseModel):
        return JSONResponse(model.model_dump(mode="json", by_alias=True))
    if isinstance(model, list):
        return JSONResponse([m.model_dump(mode="json", by_alias=True) if isinstance(m, pydantic.BaseModel) else m
                             for m in model])
    return JSONResponse(model)


def _guard(handler: Callable[[Request], Response]) -> Handler:
    """Errors a user can cause become answers: 404 for unknown runs or digests, 400 for a
    bad filter; both as JSON under /api/ and as a page elsewhere."""
    async def wrapped(request: Request) -> Response:
        try:
            return await _threaded(handler, request)
        except (LookupError, FileNotFoundError) as missing:
            return _error(request, 404, str(missing).strip("'\""))
        except (query.QueryError, ValueError) as bad:
            return _error(request, 400, str(bad))
    return wrapped


async def _threaded(handler: Callable[[Request], Response], request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(handler, request)


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return pages.error(request, status, message)


def app(store_url: str, *, logs: Path | None = None, index_path: str | None = None,
        verifier: verification.Verifier | None = None, sync_seconds: float | None = None,
        allowed_hosts: Sequence[str] = hosts.LOOPBACK) -> Starlette:
    """The board over ``store_url``, answering requests whose Host is in ``allowed_hosts``."""
    board = state.Board(store_url, logs=logs, index_path=index_path, verifier=verifier, sync_seconds=sync_seconds)

    def q(request: Request, name: str, default: str = "") -> str:
        return str(request.query_params.get(name, default))

    def api_runs(request: Request) -> Response:
        return _json(api.listing(board, listing_args(request)))

    def api_names(request: Request) -> Response:
        return _json(query.names(board.index))

    def api_run(request: Request) -> Response:
        return _json(api.run_page(board, board.resolve(request.path_params["run"])))

    def api_status(request: Request) -> Response:
        return _json(api.run_status(board, board.resolve(request.path_params["run"])))

    def api_series(request: Request) -> Response:
        return _json(api.run_curves(board, board.resolve(request.path_params["run"]),
                                    int(q(request, "max_points", "500")), float(q(request, "smooth", "0"))))

    def api_lineage(request: Request) -> Response:
        return _json(api.lineage_graph(board, board.resolve(request.path_params["run"])))

    def api_record(request: Request) -> Response:
        return _json(api.stage_record(board, board.resolve(request.path_params["run"]), request.path_params["stage"]))

    def api_log(request: Request) -> Response:
        text = api.log(board, board.resolve(request.path_params["run"]), request.path_params["stage"])
        if text is None:
            raise LookupError("this board has no log of that stage (local logs live in .tycho/logs; "
                              "on a cluster: kubectl logs job/<execution>)")
        return PlainTextResponse(text)

    def api_compare(request: Request) -> Response:
        return _json(api.compare(board, run_ids(request, board)))

    def api_diff(request: Request) -> Response:
        return _json(api.compare(board, [board.resolve(q(request, "a")), board.resolve(q(request, "b"))]))

    def api_curves(request: Request) -> Response:
        return _json(api.compare_curves(board, run_ids(request, board), q(request, "stage"), q(request, "metric"),
                                        max_points=int(q(request, "max_points", "500")),
                                        weight=float(q(request, "smooth", "0")), group_by=q(request, "group_by")))

    def api_parallel(request: Request) -> Response:
        args = listing_args(request)
        dims = [d.strip() for item in request.query_params.getlist("dims") for d in item.split(",") if d.strip()]
        cols = query.columns_of(board.index, dims, filter_texts=args.filters, pipeline=args.pipeline or None,
                                since=args.since or None, all_runs=args.all)
        doc = {"runs": cols.runs, "columns": [col.model_dump(by_alias=True) for col in cols.columns],
               "values": cols.values, "warnings": cols.warnings}  # plain lists: no per-value serialising
        if request.query_params.get("trials") in ("1", "true") and len(cols.runs) <= 500:
            doc["trials"] = api.trials(board, cols.runs)
        return JSONResponse(doc)

    def api_trace(request: Request) -> Response:
        return _json(api.trace(board, board.resolve(q(request, "run")), q(request, "metric")))

    def api_groups(request: Request) -> Response:
        return _json(api.groups(board))

    def api_downstream(request: Request) -> Response:
        return _json(api.downstream(board, q(request, "digest")))

    def api_artifact(request: Request) -> Response:
        return _json(api.artifact_page(board, request.path_params["sha256"], q(request, "type") or None))

    def raw_artifact(request: Request) -> Response:
        data, detected = api.artifact(board, request.path_params["sha256"])
        kind = q(request, "type") or detected
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        if kind in (media.HTML, media.SVG) or not (media.is_image(kind) or media.is_text(kind)):
            headers.update(SANDBOXED_ARTIFACT)
        if q(request, "download"):
            headers["Content-Disposition"] = (
                f'attachment; filename="{q(request, "name") or request.path_params["sha256"]}"')
        return Response(data, media_type=kind, headers=headers)

    def healthz(request: Request) -> Response:
        board.index.conn.execute("SELECT 1").fetchone()
        return PlainTextResponse("ok")

    def page(render: Callable[[Request, state.Board], Response]) -> Callable[[Request], Response]:
        return lambda request: render(request, board)

    routes = [
        Route("/healthz", _guard(healthz)),
        Route("/api/runs", _guard(api_runs)),
        Route("/api/names", _guard(api_names)),
        Route("/api/runs/{run}", _guard(api_run)),
        Route("/api/runs/{run}/status", _guard(api_status)),
        Route("/api/runs/{run}/series", _guard(api_series)),
        Route("/api/runs/{run}/lineage", _guard(api_lineage)),
        Route("/api/runs/{run}/records/{stage}", _guard(api_record)),
        Route("/api/runs/{run}/logs/{stage}", _guard(api_log)),
        Route("/api/compare", _guard(api_compare)),
        Route("/api/diff", _guard(api_diff)),
        Route("/api/curves", _guard(api_curves)),
        Route("/api/parallel", _guard(api_parallel)),
        Route("/api/trace", _guard(api_trace)),
        Route("/api/groups", _guard(api_groups)),
        Route("/api/downstream", _guard(api_downstream)),
        Route("/api/artifacts/{sha256}", _guard(api_artifact)),
        Route("/artifacts/{sha256}", _guard(raw_artifact)),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        Route("/", _guard(page(pages.leaderboard))),
        Route("/runs/{run}", _guard(page(pages.run))),
        Route("/runs/{run}/logs/{stage}", _guard(page(pages.log))),
        Route("/runs/{run}/records/{stage}", _guard(page(pages.record))),
        Route("/compare", _guard(page(pages.compare))),
        Route("/artifacts/{sha256}/view", _guard(page(pages.artifact))),
        Route("/trace", _guard(page(pages.trace))),
        Route("/provenance", _guard(page(pages.provenance))),
        Route("/downstream", _guard(page(pages.downstream))),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        board.start()
        try:
            yield
        finally:
            board.stop()

    starlette = Starlette(routes=routes, lifespan=lifespan, middleware=security.middleware(allowed_hosts))
    starlette.state.board = board
    return starlette


def serve(store_url: str, *, host: str = "127.0.0.1", port: int = 8765, logs: Path | None = None,
          index_path: str | None = None, verifier: verification.Verifier | None = None,
          allowed_hosts: Sequence[str] = hosts.LOOPBACK) -> None:
    import uvicorn

    store_mod.Store(store_url)  # fail early on a bad URL
    uvicorn.run(app(store_url, logs=logs, index_path=index_path, verifier=verifier, allowed_hosts=allowed_hosts),
                host=host, port=port, log_level="warning", access_log=False)


def dumps(model: pydantic.BaseModel) -> str:
    """A model as JSON for embedding in a page (``<script type=application/json>``)."""
    return json.dumps(model.model_dump(mode="json", by_alias=True)).replace("</", "<\\/")
