"""Filters, keys and sorts as SQL over the index's tables (``tycho.index.db``).

``Compiler`` turns a ``tycho.index.filters`` tree into a WHERE clause, each condition an
``r.id IN (...)`` over an index where it can be (the subquery runs once, not once per
run), with regexes tested once per distinct value. ``resolve`` says what a key names:
a run attribute (``ATTRIBUTES``), tags, or a value (``tycho.index.rows``: metrics,
``STAGE.PARAM``, ``STAGE.METRIC``): a bare key is looked up as a metric, then a param,
then a stage metric, and the prefixes ``metrics.`` / ``params.`` pick one.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import pydantic
from pydantic import alias_generators

from tycho.index import filters
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


class QueryError(ValueError):
    """A key, sort or filter the index cannot answer; the message says what is known and
    ``flag`` which of the command's flags gave it."""

    def __init__(self, message: str, flag: str = "--filter") -> None:
        super().__init__(message)
        self.flag = flag

def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None

class Compiler:
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
        raise QueryError(f"{sort!r}: the direction after ':' is asc or desc", "--sort")
    return key, direction == "asc"

def where(c: Compiler, filter_texts: Sequence[str], pipeline: str | None, since: str | None, all_runs: bool,
           now: dt.datetime | None) -> str:
    """The WHERE clause of a listing (its parameters go to ``c.params``)."""
    clauses: list[str] = []
    try:
        expr = filters.parse_all(list(filter_texts))
    except filters.FilterError as err:
        raise QueryError(str(err)) from None
    if pipeline:
        clauses.append("r.pipeline = ?")
        c.params.append(pipeline)
    if since:
        try:
            cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=filters.seconds(since))
        except filters.FilterError as err:
            raise QueryError(str(err), "--since") from None
        clauses.append("r.created_at >= ?")
        c.params.append(cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    if expr is not None:
        clauses.append(c.compile(expr))
    if not all_runs:
        clauses.append("r.repeat_of IS NULL")
    return ("WHERE " + " AND ".join(clauses)) if clauses else ""


