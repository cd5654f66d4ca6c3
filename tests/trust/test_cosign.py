"""A standard verifier accepts Tycho's signed records: cosign (built from its Go module by
tests/cluster/build.sh) runs ``verify-blob-attestation`` on a stored output, its record's DSSE
envelope and the signing key's public half, and refuses a changed output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import tools
from tests.support.workspace import Workspace
from tycho.provenance import layout

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def cosign() -> str:
    return str(tools.go_tool("cosign"))  # built from its Go module by tests/cluster/build.sh


def verify_blob(cosign: str, key: Path, envelope: Path, blob: Path, home: Path) -> subprocess.CompletedProcess[str]:
    # cosign also tries to fetch Sigstore's public trust root; the proxy variables point it at
    # a closed local port so nothing leaves the machine (key-based verification needs no root).
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    return subprocess.run([cosign, "verify-blob-attestation", "--key", str(key), "--signature", str(envelope),
                           "--type", "slsaprovenance1", "--insecure-ignore-tlog=true", str(blob)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cosign_verifies_a_tycho_record(cosign: str, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    summary = ws.run()
    store = ws.root / "store"
    total = summary.stages["total"]
    key = next((store / layout.KEYS).glob("*.pub"))
    envelope = store / layout.attestation_rel(summary.run_id, "total")
    blob = tmp_path / "total"
    blob.write_bytes(ws.object(total.outputs["total"]).read_bytes())
    ok = verify_blob(cosign, key, envelope, blob, tmp_path)
    assert ok.returncode == 0 and "Verified OK" in ok.stderr, ok.stderr
    blob.write_bytes(b"21.0\n")
    refused = verify_blob(cosign, key, envelope, blob, tmp_path)
    assert refused.returncode != 0 and "no matching subject digest" in refused.stderr, refused.stderr
