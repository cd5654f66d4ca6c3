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
import re
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

    def _matching(self, sql: str, params: Sequence[Any], pattern: str) -> list[str] | None:
        """The distinct values ``sql`` yields that ``pattern`` matches, or None when there are
        too many to list: a regex is then tested once per distinct value, not once per run."""
        values = [r[0] for r in self.conn.execute(sql + " LIMIT 2001", params)]
        if len(values) > 2000:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise QueryError(f"~ {pattern!r} is not a regular expression: {err}") from None
        return [v for v in values if v is not None and compiled.search(v)]

    def _in(self, column: str, values: Sequence[Any]) -> str:
        if not values:
            return "0"
        self.params += list(values)
        return f"{column} IN ({', '.join('?' * len(values))})"

    def _test(self, cond: Cond, num: str | None, text: str, distinct: tuple[str, list[Any]] | None = None) -> str:
        """SQL for one comparison of a value held as (num, text) columns. ``distinct``: a query
        of the column's distinct values (as text), for regexes."""
        op, values = cond.op, cond.values
        numbers = [_number(v) for v in values] if num else []
        if op in ("in", "not in") and numbers and all(n is not None for n in numbers):
            test = self._in(num or "", numbers)  # numbers compare as numbers: an index range, no text
            return test if op == "in" else f"NOT {test}"
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
            target = f"COALESCE({text}, CAST({num} AS TEXT))" if num else text
            listed = self._matching(*distinct, value) if distinct else None
            if listed is not None:
                test = self._in(target, listed)
            else:
                self.params.append(value)
                test = f"({target} REGEXP ?)"
            return f"NOT {test}" if op == "!~" else test
        n = _number(value) if num else None
        sql_op = {"=": "=", "!=": "!="}.get(op, op)
        if n is not None:
            self.params.append(n)
            return f"{num} {sql_op} ?"
        self.params.append(value)
        return f"{text} {sql_op} ?"

    def cond(self, cond: Cond) -> str:
        """One condition, as ``r.id IN (...)`` over an index wherever it can be: the subquery
        runs once, not once per run."""
        col = self.resolve(cond.key)
        if col.kind == "attribute":
            column = f"r.{col.name}"
            if cond.op == "missing":
                return f"({column} IS NULL OR {column} = '')"
            if cond.op == "present":
                return f"({column} IS NOT NULL AND {column} != '')"
            numeric = col.name in ("headline_value", "executed", "hits", "stages", "duration")
            distinct: tuple[str, list[Any]] = (f"SELECT DISTINCT CAST({col.name} AS TEXT) FROM runs", [])
            return f"({self._test(cond, column if numeric else None, column, distinct)})"
        if col.kind == "tag":
            if cond.op == "missing":
                return "r.id NOT IN (SELECT run FROM tags)"
            if cond.op == "present":
                return "r.id IN (SELECT run FROM tags)"
            negative = cond.op in ("!=", "not in", "!~")
            positive = Cond(cond.key, {"!=": "=", "not in": "in", "!~": "~"}.get(cond.op, cond.op),  # type: ignore[arg-type]
                            cond.values)
            test = self._test(positive, None, "tag", ("SELECT DISTINCT tag FROM tags", []))
            return f"r.id {'NOT IN' if negative else 'IN'} (SELECT run FROM tags WHERE {test})"
        if col.kind == "unknown":
            self.warnings.append(f"no run has a metric, param or attribute named {cond.key!r}")
        nid = self.name_id(col)
        self.params.append(nid)
        if cond.op == "missing":
            return "r.id NOT IN (SELECT run FROM vals WHERE name = ?)"
        if cond.op == "present":
            return "r.id IN (SELECT run FROM vals WHERE name = ?)"
        values = ("SELECT DISTINCT COALESCE(text, CAST(num AS TEXT)) FROM vals WHERE name = ?", [nid])
        return f"r.id IN (SELECT run FROM vals WHERE name = ? AND {self._test(cond, 'num', 'text', values)})"


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
    sort_col = c.resolve(sort_key)
    if sort_col.kind == "tag":
        raise QueryError("cannot sort by tags; sort by a metric, a param or an attribute")
    if sort_col.kind == "unknown":
        c.warnings.append(f"sort key {sort_key!r} names no metric, param or attribute of any run")
    total = int(conn.execute(f"SELECT count(*) FROM runs r {where_sql}", filter_params).fetchone()[0])
    ids = _page(conn, c, sort_col, ascending, where_sql, filter_params, limit, offset)
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


_NON_NULL = ("run_id", "pipeline", "created_at")


def _page(conn: sqlite3.Connection, c: _Compiler, col: Column, ascending: bool, where_sql: str,
          params: list[Any], limit: int, offset: int) -> list[int]:
    """The ids of one page. A numeric value sort walks the (name, num) index in order and
    stops once the page is full; the runs without the value follow, newest first."""
    direction = "ASC" if ascending else "DESC"
    if col.kind == "attribute":
        nulls = "" if col.name in _NON_NULL else f"r.{col.name} IS NULL, "
        order = f"{nulls}r.{col.name} {direction}, r.id {direction}"
        return [int(r[0]) for r in conn.execute(
            f"SELECT r.id FROM runs r {where_sql} ORDER BY {order} LIMIT ? OFFSET ?", [*params, limit, offset])]
    nid = c.name_id(col)
    numeric = conn.execute("SELECT 1 FROM vals WHERE name = ? AND num IS NOT NULL LIMIT 1", (nid,)).fetchone()
    extra = ("AND " + where_sql[len("WHERE "):]) if where_sql else ""
    if not numeric:  # text values (or none): sort them the plain way
        return [int(r[0]) for r in conn.execute(
            f"SELECT r.id FROM runs r LEFT JOIN vals s ON s.run = r.id AND s.name = ? {where_sql} "
            f"ORDER BY s.text IS NULL, s.text {direction}, r.id DESC LIMIT ? OFFSET ?",
            [nid, *params, limit, offset])]
    having = (f"FROM vals s INDEXED BY vals_by_name CROSS JOIN runs r ON r.id = s.run "
              f"WHERE s.name = ? AND s.num IS NOT NULL {extra}")
    ids = [int(r[0]) for r in conn.execute(
        f"SELECT r.id {having} ORDER BY s.num {direction}, s.run {direction} LIMIT ? OFFSET ?",
        [nid, *params, limit, offset])]
    if len(ids) == limit:
        return ids
    with_value = int(conn.execute(f"SELECT count(*) {having}", [nid, *params]).fetchone()[0])
    rest = max(0, offset - with_value)
    without = f"r.id NOT IN (SELECT run FROM vals WHERE name = ? AND num IS NOT NULL)"
    return ids + [int(r[0]) for r in conn.execute(
        f"SELECT r.id FROM runs r WHERE {without} {extra} ORDER BY r.id DESC LIMIT ? OFFSET ?",
        [nid, *params, limit - len(ids), rest])]


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
