"""Media types from content: outputs have no file names, so the first bytes decide."""

from __future__ import annotations

import json

import pytest

from tycho.provenance import media


@pytest.mark.parametrize("head, expected", [
    (b"\x89PNG\r\n\x1a\n....", "image/png"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/svg+xml"),
    (json.dumps({"a": 1}).encode(), "application/json"),
    (json.dumps({"cells": [], "nbformat": 4}).encode(), "application/x-ipynb+json"),
    (b"epoch,loss\n1,0.5\n2,0.4\n", "text/csv"),
    (b"just some words\n", "text/plain"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
    (b"PK\x03\x04zipdata", "application/zip"),
])
def test_detects_what_browsers_can_show(head: bytes, expected: str) -> None:
    assert media.detect(head) == expected


def test_a_declared_media_type_wins() -> None:
    assert media.detect(b"a,b\n1,2\n", declared="text/plain") == "text/plain"
