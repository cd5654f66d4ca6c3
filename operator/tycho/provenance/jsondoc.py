"""The one encoding of the JSON documents Tycho writes into a store: records, cache entries,
producer indexes, byproducts (metrics, checks, environment), remembered suggestions.

``tycho verify`` decides that a document is "not what Tycho wrote" by encoding what it
parsed again and comparing bytes, so every writer and that check go through ``encode``.
ASCII JSON (non-ASCII escaped): any string encodes, lone surrogates included, and the
bytes are the same on every platform. Keys sorted, two-space indent, a final newline.

Run summaries are the exception: pydantic's serializer writes them in the model's field
order (``tycho.provenance.runs.encode``, for speed), and they are sealed by the digest of
the bytes stored, never re-encoded to be compared.
"""

from __future__ import annotations

import json
from typing import Any


def encode(value: Any) -> bytes:
    """The bytes a JSON document is stored as."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("ascii")
