"""Artifacts shown as tables: JSON objects and lists of records, CSV files.

Pure: bytes in, a ``Table`` (header and rows of cells, capped) out, for the run page.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pydantic

from tycho.provenance import media

MAX_ROWS = 500


class Table(pydantic.BaseModel):
    header: list[str]
    rows: list[list[str]]
    total: int
    """Rows before the cap."""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "…"
    return "" if value is None else str(value)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def from_json(doc: Any) -> Table:
    """A list of objects: one row each (columns = their flattened keys). An object whose
    largest value is such a list (``{"trials": [...]}``) shows that list; any other object:
    key / value rows."""
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
        if lists and len(doc) <= 4:
            doc = max(lists, key=len)
    if isinstance(doc, list) and doc and all(isinstance(i, dict) for i in doc):
        flat = []
        for item in doc:
            row: dict[str, Any] = {}
            _flat("", item, row)
            flat.append(row)
        header = list(dict.fromkeys(k for row in flat for k in row))
        return Table(header=header, rows=[[_cell(r.get(h)) for h in header] for r in flat[:MAX_ROWS]],
                     total=len(flat))
    if isinstance(doc, dict):
        pairs: dict[str, Any] = {}
        _flat("", doc, pairs)
        items = list(pairs.items())
        return Table(header=["key", "value"], rows=[[k, _cell(v)] for k, v in items[:MAX_ROWS]], total=len(items))
    if isinstance(doc, list):
        return Table(header=["value"], rows=[[_cell(v)] for v in doc[:MAX_ROWS]], total=len(doc))
    return Table(header=["value"], rows=[[_cell(doc)]], total=1)


def from_csv(text: str) -> Table:
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return Table(header=[], rows=[], total=0)
    return Table(header=rows[0], rows=rows[1:MAX_ROWS + 1], total=len(rows) - 1)


def of(data: bytes, media_type: str) -> Table | None:
    """The table view of an artifact, or None when it has none."""
    if media_type == media.CSV:
        return from_csv(data.decode(errors="replace"))
    if media_type == media.JSON:
        try:
            return from_json(json.loads(data))
        except ValueError:
            return None
    return None
