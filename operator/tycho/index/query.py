"""Listing runs from the index: filter, sort, choose columns, fold repeats, page.

``list_runs`` is what ``tycho runs`` and the board's leaderboard (``/api/runs``) call; its
result (``Listing``) is what both show. Keys name run attributes (``ATTRIBUTES``), tags,
or values (``tycho.index.rows``: metrics, ``STAGE.PARAM``, ``STAGE.METRIC``); a bare
key is looked up as a metric, then a param, then a stage metric, and the prefixes
``metrics.`` / ``params.`` pick one. Sorting puts the highest value first unless the key
ends in ``:asc``; runs without the value come last either way.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

from tycho.index import db, filters
from tycho.index.filters import Cond, Expr

ATTRIBUTES: dict[str, str] = {
    "run": "run_id", "runId": "run_id", "run_id": "run_id", "pipeline": "pipeline", "owner": "owner",
    "phase": "phase", "created": "created_at", "createdAt": "created_at", "finished": "finished_at",
    "finishedAt": "finished_at", "executor": "executor", "host": "host", "namespace": "namespace",
    "description": "description", "message": "message", "reproduces": "reproduces", "code": "code_digest",
    "commit": "code_commit", "headline": "headline_value", "headline_name": "headline_name",
    "executed": "executed", "hits": "hits", "stages": "stages", "duration": "duration", "verified": "verified",
}
TAG_KEYS = ("tag", "tags")
DEFAULT_COLUMNS = ("pipeline", "phase", "created", "executed", "hits", "headline")
PREFIXES = {"metrics.": ("metric", "stage_metric"), "metric.": ("metric", "stage_metric"),
            "params.": ("param",), "param.": ("param",)}


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class Column(Model):
    key: str
    """As the user named it."""
    kind: Literal["attribute", "tag", "param", "metric", "stage_metric", "unknown"]
    name: str
    """The attribute column or the value's full name."""


class ListedRun(Model):
    run_id: str
    pipeline: str
    owner: str
    phase: str
    created_at: str
    finished_at: str | None
    executor: str
    tags: list[str]
    stages: int
    executed: int
    hits: int
    headline: dict[str, float]
    duration: float | None
    message: str
    reproduces: str | None
    repeat_of: str | None
    repeats: int = 0
    """Runs that executed nothing and reused this one's results (folded into it)."""
    verified: str | None = None
    """Verification state (records and signatures): None until verification lands."""
    values: dict[str, Any] = {}
    """Column key -> value, for every chosen column."""


class Listing(Model):
    total: int
    offset: int
    limit: int
    sort: str
    columns: list[Column]
    runs: list[ListedRun]
    hidden: list[str] = []
    """Columns left out by only_changed because every listed run has the same value."""
    warnings: list[str] = []


class QueryError(ValueError):
    """A key, sort or filter the index cannot answer; the message says what is known."""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Compiler:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.params: list[Any] = []
        self.warnings: list[str] = []

    def resolve(self, key: str) -> Column:
        if key in ATTRIBUTES:
            return Column(key=key, kind="attribute", name=ATTRIBUTES[key])
        if key in TAG_KEYS:
            return Column(key=key, kind="tag", name="tag")
        kinds: tuple[str, ...] = ("metric", "param", "stage_metric")
        name = key
        for prefix, prefixed in PREFIXES.items():
            if key.startswith(prefix):
                kinds, name = prefixed, key[len(prefix):]
        for kind in kinds:
            if self.conn.execute("SELECT 1 FROM names WHERE kind=? AND name=?", (kind, name)).fetchone():
                return Column(key=key, kind=kind, name=name)
        return Column(key=key, kind="unknown", name=name)

    def name_id(self, col: Column) -> int:
        row = self.conn.execute("SELECT id FROM names WHERE kind=? AND name=?", (col.kind, col.name)).fetchone()
        return int(row[0]) if row else -1

    def compile(self, expr: Expr) -> str:
        if isinstance(expr, filters.Not):
            return f"NOT ({self.compile(expr.expr)})"
        if isinstance(expr, filters.And):
            return "(" + " AND ".join(self.compile(e) for e in expr.items) + ")"
        if isinstance(expr, filters.Or):
            return "(" + " OR ".join(self.compile(e) for e in expr.items) + ")"
        return self.cond(expr)

    def _test(self, cond: Cond, num: str | None, text: str) -> str:
        """SQL for one comparison of a value held as (num, text) columns."""
        op, values = cond.op, cond.values
        if op in ("in", "not in"):
            parts = []
            for v in values:
                n = _number(v) if num else None
                self.params += [n, v] if n is not None else [v]
                parts.append(f"({num} = ? OR {text} = ?)" if n is not None else f"{text} = ?")
            joined = "(" + " OR ".join(parts) + ")"
            return joined if op == "in" else f"NOT {joined}"
        value = values[0]
        if op in ("~", "!~"):
            self.params.append(value)
            target = f"COALESCE({text}, CAST({num} AS TEXT))" if num else text
            return f"{'NOT ' if op == '!~' else ''}({target} REGEXP ?)"
        n = _number(value) if num else None
        sql_op = {"=": "=", "!=": "!="}.get(op, op)
        if n is not None:
            self.params.append(n)
            return f"{num} {sql_op} ?"
        self.params.append(value)
        return f"{text} {sql_op} ?"

    def cond(self, cond: Cond) -> str:
        col = self.resolve(cond.key)
        if col.kind == "attribute":
            column = f"r.{col.name}"
            if cond.op == "missing":
                return f"({column} IS NULL OR {column} = '')"
            if cond.op == "present":
                return f"({column} IS NOT NULL AND {column} != '')"
            numeric = col.name in ("headline_value", "executed", "hits", "stages", "duration")
            return f"({self._test(cond, column if numeric else None, column)})"
        if col.kind == "tag":
            if cond.op == "missing":
                return "NOT EXISTS (SELECT 1 FROM tags t WHERE t.run = r.id)"
            if cond.op == "present":
                return "EXISTS (SELECT 1 FROM tags t WHERE t.run = r.id)"
            if cond.op in ("!=", "not in", "!~"):
                positive = Cond(cond.key, {"!=": "=", "not in": "in", "!~": "~"}[cond.op], cond.values)  # type: ignore[arg-type]
                return f"NOT EXISTS (SELECT 1 FROM tags t WHERE t.run = r.id AND {self._test(positive, None, 't.tag')})"
            return f"EXISTS (SELECT 1 FROM tags t WHERE t.run = r.id AND {self._test(cond, None, 't.tag')})"
        if col.kind == "unknown":
            self.warnings.append(f"no run has a metric, param or attribute named {cond.key!r}")
        nid = self.name_id(col)
        if cond.op == "missing":
            self.params.append(nid)
            return "NOT EXISTS (SELECT 1 FROM vals v WHERE v.run = r.id AND v.name = ?)"
        if cond.op == "present":
            self.params.append(nid)
            return "EXISTS (SELECT 1 FROM vals v WHERE v.run = r.id AND v.name = ?)"
        self.params.append(nid)
        return f"EXISTS (SELECT 1 FROM vals v WHERE v.run = r.id AND v.name = ? AND {self._test(cond, 'v.num', 'v.text')})"


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """``KEY`` (highest first) or ``KEY:asc`` / ``KEY:desc``; default newest first."""
    if not sort:
        return "created", False
    key, _, direction = sort.partition(":")
    if direction not in ("", "asc", "desc"):
        raise QueryError(f"--sort {sort!r}: the direction after ':' is asc or desc")
    return key, direction == "asc"


def _where(c: _Compiler, filter_texts: Sequence[str], pipeline: str | None, since: str | None, all_runs: bool,
           now: dt.datetime | None) -> str:
    """The WHERE clause of a listing (its parameters go to ``c.params``)."""
    where: list[str] = []
    try:
        expr = filters.parse_all(list(filter_texts))
    except filters.FilterError as err:
        raise QueryError(str(err)) from None
    if pipeline:
        where.append("r.pipeline = ?")
        c.params.append(pipeline)
    if since:
        try:
            cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=filters.seconds(since))
        except filters.FilterError as err:
            raise QueryError(str(err)) from None
        where.append("r.created_at >= ?")
        c.params.append(cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    if expr is not None:
        where.append(c.compile(expr))
    if not all_runs:
        where.append("r.repeat_of IS NULL")
    return ("WHERE " + " AND ".join(where)) if where else ""


def list_runs(index: db.Index, *, filter_texts: Sequence[str] = (), pipeline: str | None = None,
              since: str | None = None, sort: str | None = None, columns: Sequence[str] | None = None,
              limit: int = 100, offset: int = 0, all_runs: bool = False, only_changed: bool = False,
              now: dt.datetime | None = None) -> Listing:
    conn = index.conn
    c = _Compiler(conn)
    where_sql = _where(c, filter_texts, pipeline, since, all_runs, now)
    filter_params = list(c.params)

    sort_key, ascending = parse_sort(sort)
    direction = "ASC" if ascending else "DESC"
    sort_col = c.resolve(sort_key)
    join, join_params = "", []
    if sort_col.kind == "attribute":
        order = f"r.{sort_col.name} IS NULL, r.{sort_col.name} {direction}, r.id DESC"
    elif sort_col.kind == "tag":
        raise QueryError("cannot sort by tags; sort by a metric, a param or an attribute")
    else:
        if sort_col.kind == "unknown":
            c.warnings.append(f"sort key {sort_key!r} names no metric, param or attribute of any run")
        join = "LEFT JOIN vals s ON s.run = r.id AND s.name = ?"
        join_params = [c.name_id(sort_col)]
        order = f"s.num IS NULL AND s.text IS NULL, s.num {direction}, s.text {direction}, r.id DESC"
    total = int(conn.execute(f"SELECT count(*) FROM runs r {where_sql}", filter_params).fetchone()[0])
    ids = [int(r[0]) for r in conn.execute(
        f"SELECT r.id FROM runs r {join} {where_sql} ORDER BY {order} LIMIT ? OFFSET ?",
        [*join_params, *filter_params, limit, offset]).fetchall()]
    chosen = [c.resolve(k) for k in (columns if columns is not None else DEFAULT_COLUMNS)]
    for col in chosen:
        if col.kind == "unknown":
            c.warnings.append(f"column {col.key!r} names no metric, param or attribute of any run")
    listed = _rows(conn, c, ids, chosen)
    hidden: list[str] = []
    if only_changed and len(listed) > 1:
        for col in chosen:
            if len({repr(r.values.get(col.key)) for r in listed}) == 1:
                hidden.append(col.key)
        chosen = [col for col in chosen if col.key not in hidden]
        for r in listed:
            r.values = {k: v for k, v in r.values.items() if k not in hidden}
    return Listing(total=total, offset=offset, limit=limit, sort=f"{sort_key}:{'asc' if ascending else 'desc'}",
                   columns=chosen, runs=listed, hidden=hidden, warnings=list(dict.fromkeys(c.warnings)))


def _rows(conn: sqlite3.Connection, c: _Compiler, ids: list[int], chosen: list[Column]) -> list[ListedRun]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    fields = ("id, run_id, pipeline, owner, phase, created_at, finished_at, executor, stages, executed, hits, "
              "headline_name, headline_value, duration, message, reproduces, repeat_of, verified")
    by_id: dict[int, dict[str, Any]] = {}
    for row in conn.execute(f"SELECT {fields} FROM runs WHERE id IN ({marks})", ids):
        names = [f.strip() for f in fields.split(",")]
        by_id[int(row[0])] = dict(zip(names, row))
    tags: dict[int, list[str]] = {}
    for rid, tag in conn.execute(f"SELECT run, tag FROM tags WHERE run IN ({marks})", ids):
        tags.setdefault(int(rid), []).append(str(tag))
    repeats = dict(conn.execute(
        f"SELECT repeat_of, count(*) FROM runs WHERE repeat_of IN (SELECT run_id FROM runs WHERE id IN ({marks})) "
        "GROUP BY repeat_of", ids).fetchall())
    value_cols = [col for col in chosen if col.kind in ("param", "metric", "stage_metric")]
    values: dict[tuple[int, int], Any] = {}
    if value_cols:
        nids = {c.name_id(col): col for col in value_cols}
        nmarks = ",".join("?" * len(nids))
        for rid, nid, num, text in conn.execute(
                f"SELECT run, name, num, text FROM vals WHERE run IN ({marks}) AND name IN ({nmarks})",
                [*ids, *nids]):
            values[(int(rid), int(nid))] = _decode(num, text)
    out: list[ListedRun] = []
    for rid in ids:
        r = by_id[rid]
        row_values: dict[str, Any] = {}
        for col in chosen:
            if col.kind == "attribute":
                row_values[col.key] = r.get(col.name) if col.name in r else _attribute(conn, rid, col.name)
            elif col.kind == "tag":
                row_values[col.key] = sorted(tags.get(rid, []))
            elif col.kind == "unknown":
                row_values[col.key] = None
            else:
                row_values[col.key] = values.get((rid, c.name_id(col)))
        if "headline_value" in [col.name for col in chosen]:
            for col in chosen:
                if col.name == "headline_value" and r["headline_name"] is not None:
                    row_values[col.key] = {r["headline_name"]: r["headline_value"]}
        out.append(ListedRun(
            run_id=r["run_id"], pipeline=r["pipeline"], owner=r["owner"] or "", phase=r["phase"],
            created_at=r["created_at"], finished_at=r["finished_at"], executor=r["executor"],
            tags=tags.get(rid, []), stages=r["stages"], executed=r["executed"], hits=r["hits"],
            headline={r["headline_name"]: r["headline_value"]} if r["headline_name"] else {},
            duration=r["duration"], message=r["message"] or "", reproduces=r["reproduces"],
            repeat_of=r["repeat_of"], repeats=int(repeats.get(r["run_id"], 0)), verified=r["verified"],
            values=row_values))
    return out


def _attribute(conn: sqlite3.Connection, rid: int, column: str) -> Any:
    row = conn.execute(f"SELECT {column} FROM runs WHERE id=?", (rid,)).fetchone()
    return row[0] if row else None


def _decode(num: float | None, text: str | None) -> Any:
    """Back from (num, text) as ``rows.encode`` stored it: booleans, integers, floats, text."""
    if num is not None and text in ("true", "false"):
        return text == "true"
    if num is not None and text is not None:
        try:
            return int(text)
        except ValueError:
            return num
    return num if num is not None else text


def names(index: db.Index, pipeline: str | None = None, limit: int = 5000) -> list[dict[str, Any]]:
    """Known value names with how many runs have each, most common first (column pickers)."""
    rows = index.conn.execute("SELECT kind, name, runs FROM names WHERE runs > 0 ORDER BY runs DESC, name LIMIT ?",
                              (limit,)).fetchall()
    return [{"kind": k, "name": n, "runs": c} for k, n, c in rows]


class Columns(Model):
    """Every matching run's values of a few keys, column-wise (parallel coordinates)."""

    runs: list[str]
    columns: list[Column]
    values: dict[str, list[Any]]
    warnings: list[str] = []


def columns_of(index: db.Index, keys: Sequence[str], *, filter_texts: Sequence[str] = (),
               pipeline: str | None = None, since: str | None = None, all_runs: bool = False,
               cap: int = 200_000) -> Columns:
    conn = index.conn
    c = _Compiler(conn)
    where_sql = _where(c, filter_texts, pipeline, since, all_runs, None)
    found = conn.execute(f"SELECT r.id, r.run_id FROM runs r {where_sql} ORDER BY r.id LIMIT ?",
                         [*c.params, cap]).fetchall()
    position = {int(rid): i for i, (rid, _) in enumerate(found)}
    chosen = [c.resolve(k) for k in keys]
    values: dict[str, list[Any]] = {}
    for col in chosen:
        column: list[Any] = [None] * len(found)
        if col.kind == "attribute":
            for rid, value in conn.execute(f"SELECT id, {col.name} FROM runs"):
                if int(rid) in position:
                    column[position[int(rid)]] = value
        elif col.kind in ("param", "metric", "stage_metric"):
            for rid, num, text in conn.execute("SELECT run, num, text FROM vals WHERE name=?", (c.name_id(col),)):
                at = position.get(int(rid))
                if at is not None:
                    column[at] = _decode(num, text)
        else:
            c.warnings.append(f"{col.key!r} names no metric, param or attribute of any run")
        values[col.key] = column
    return Columns(runs=[str(r[1]) for r in found], columns=chosen, values=values, warnings=c.warnings)
