"""Listing runs from the index: filter, sort, choose columns, fold repeats, page.

``list_runs`` is what ``tycho runs`` and the board's leaderboard (``/api/runs``) call; its
result (``Listing``) is what both show. Keys and filters are compiled to SQL by
``tycho.index.compile``. Sorting puts the highest value first unless the key ends in
``:asc``; runs without the value come last either way.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from tycho.index import db
from tycho.index.compile import (
    ATTRIBUTES,
    DEFAULT_COLUMNS,
    Column,
    Compiler,
    Model,
    QueryError,
    parse_sort,
    where as where_clause,
)

__all__ = ["ATTRIBUTES", "Column", "Columns", "ListedRun", "Listing", "QueryError", "columns_of", "list_runs",
           "names", "parse_sort"]


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

def list_runs(index: db.Index, *, filter_texts: Sequence[str] = (), pipeline: str | None = None,
              since: str | None = None, sort: str | None = None, columns: Sequence[str] | None = None,
              limit: int = 100, offset: int = 0, all_runs: bool = False, only_changed: bool = False,
              now: dt.datetime | None = None) -> Listing:
    conn = index.conn
    c = Compiler(conn)
    where_sql = where_clause(c, filter_texts, pipeline, since, all_runs, now)
    filter_params = list(c.params)

    sort_key, ascending = parse_sort(sort)
    sort_col = c.resolve(sort_key)
    if sort_col.kind == "tag":
        raise QueryError("cannot sort by tags; sort by a metric, a param or an attribute", "--sort")
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


def _page(conn: sqlite3.Connection, c: Compiler, col: Column, ascending: bool, where_sql: str,
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
    without = "r.id NOT IN (SELECT run FROM vals WHERE name = ? AND num IS NOT NULL)"
    return ids + [int(r[0]) for r in conn.execute(
        f"SELECT r.id FROM runs r WHERE {without} {extra} ORDER BY r.id DESC LIMIT ? OFFSET ?",
        [nid, *params, limit - len(ids), rest])]


def _rows(conn: sqlite3.Connection, c: Compiler, ids: list[int], chosen: list[Column]) -> list[ListedRun]:
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
    c = Compiler(conn)
    where_sql = where_clause(c, filter_texts, pipeline, since, all_runs, None)
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
    # built without validation: 100,000 runs x a few columns of plain values from the index
    return Columns.model_construct(runs=[str(r[1]) for r in found], columns=chosen, values=values,
                                   warnings=c.warnings)
