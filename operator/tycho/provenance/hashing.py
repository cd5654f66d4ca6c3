"""Streaming sha256 of files and byte streams (1 MiB reads: near ``sha256sum`` speed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def sha256_stream(stream: BinaryIO) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return h.hexdigest()
        h.update(view[:n])


def sha256_file(path: str | Path) -> str:
    with open(path, "rb", buffering=0) as f:
        return sha256_stream(f)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
