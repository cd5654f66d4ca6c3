"""Media types of stored outputs: declared per output in the manifest, else read from the
first bytes, so a browser can show a blob that has no file name (outputs have no extension).

Pure: bytes in, a media type out. Used by ``tycho show`` and the board (which serves
artifacts with this ``Content-Type`` and picks how to render them).
"""

from __future__ import annotations

import csv
import json

HTML = "text/html"
PNG = "image/png"
SVG = "image/svg+xml"
JSON = "application/json"
NOTEBOOK = "application/x-ipynb+json"
CSV = "text/csv"
TEXT = "text/plain"
BINARY = "application/octet-stream"
TREE = "application/vnd.tycho.tree+json"
SNIFF_BYTES = 64 * 1024

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x93NUMPY", "application/x-npy"),
    (b"\x89HDF\r\n\x1a\n", "application/x-hdf5"),
)


def detect(head: bytes, declared: str | None = None) -> str:
    """The media type of content starting with ``head`` (give at least ``SNIFF_BYTES``)."""
    if declared:
        return declared
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[8:12] == b"WEBP" and head.startswith(b"RIFF"):
        return "image/webp"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4 or b"\x00" in head:
            return BINARY
        text = head[: err.start].decode("utf-8")
    if "\x00" in text:
        return BINARY
    start = text.lstrip()[:512].lower()
    if start.startswith(("<!doctype html", "<html")) or ("<html" in start and start.startswith("<!--")):
        return HTML
    if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in text[:4096].lower()):
        return SVG
    if start.startswith(("{", "[")):
        found = _json_kind(head, text)
        if found:
            return found
    if _looks_like_csv(text):
        return CSV
    return TEXT


def _json_kind(head: bytes, text: str) -> str | None:
    if len(head) >= SNIFF_BYTES:  # only part of it: trust the shape
        return NOTEBOOK if '"cells"' in text[:256] or ('"nbformat"' in text and '"cells"' in text) else JSON
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and "nbformat" in doc and "cells" in doc:
        return NOTEBOOK
    if isinstance(doc, dict) and doc.get("format") == "tycho.dev/tree/v1":
        return TREE
    return JSON


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t")
    except csv.Error:
        return False
    counts = {len(row) for row in csv.reader(lines, dialect)}
    return len(counts) == 1 and counts.pop() > 1


def is_image(media_type: str) -> bool:
    return media_type.startswith("image/")


def is_text(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in (JSON, NOTEBOOK, TREE, SVG)
