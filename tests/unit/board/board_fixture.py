"""A board over a real local store with two demo runs (tests/unit/index/runs_fixture.py), a PNG
figure, an HTML report, a JSON table and a check: what the app tests request pages of."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from starlette.testclient import TestClient

from tests.unit.index import runs_fixture as rf
from tycho.board import hosts, server
from tycho.provenance import documents, store as store_mod

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<!doctype html><html><body><script>parent.document.title='owned'</script>report</body></html>"
EVIL = "<script>alert(1)</script>"
URL = "http://127.0.0.1:8765"
"""Where the test client says the board is (a Host the board answers by default)."""
CHECK = documents.Check(code="TY-TEMPERATURE-BOUND", severity="warn", message="T is at its lower bound 0.05",
                        details={"bound": 0.05, "temperature": 0.05})


def client(tmp_path: Path, allowed_hosts: Sequence[str] = hosts.LOOPBACK, url: str = URL) -> Iterator[TestClient]:
    store = store_mod.Store(f"file://{tmp_path / 'store'}")
    png, html = store.put_bytes(PNG), store.put_bytes(HTML)
    trials = store.put_bytes(json.dumps({"trials": [{"params": {"lr": 0.1}, "val_accuracy": 0.5},
                                                    {"params": {"lr": 0.01}, "val_accuracy": 0.7}]}).encode())
    a = rf.summary("demo-a", minute=0, accuracy=0.91, tags=("demo", EVIL))
    a.stages["evaluate"].outputs.update(plot=png, report=html)
    a.stages["train"].outputs["trials"] = trials
    a.stages["evaluate"] = a.stages["evaluate"].model_copy(update={"checks": [CHECK]})
    rf.save(store, a, rf.summary("demo-b", minute=1, epochs=30, accuracy=0.97))
    app = server.app(store.url, index_path=str(tmp_path / "index.sqlite"), sync_seconds=0.2,
                     allowed_hosts=allowed_hosts)
    with TestClient(app, base_url=url) as c:
        yield c
