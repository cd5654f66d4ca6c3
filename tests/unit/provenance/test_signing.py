"""Key files are read by their fixed layout when Tycho wrote them, by cryptography otherwise:
both readings must give the same key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tycho.provenance import signing


def test_keys_tycho_writes_read_as_cryptography_reads_them(tmp_path: Path) -> None:
    for n in range(20):
        path = signing.ensure_key(tmp_path / f"k{n}")
        key = signing.load_private(path)
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(loaded, ed25519.Ed25519PrivateKey)
        assert key.private_bytes_raw() == loaded.private_bytes_raw()
        pem = signing.public_pem(key.public_key())
        assert signing.load_public(pem).public_bytes_raw() == key.public_key().public_bytes_raw()
        assert (signing.load_public(pem.replace(b"\n", b"\r\n")).public_bytes_raw()
                == key.public_key().public_bytes_raw())


def test_other_encodings_still_load_and_bad_ones_are_refused(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(TypeError):  # encrypted: cryptography asks for the password, as before
        signing.load_private(encrypted)
    annotated = tmp_path / "annotated.pem"  # text before the block, as `openssl pkey -text` writes
    annotated.write_bytes(b"ED25519 Private-Key:\n" + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert signing.load_private(annotated).private_bytes_raw() == key.private_bytes_raw()
    short = (b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(signing.SPKI_PREFIX + b"\0" * 31)
             + b"\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError):
        signing.load_public(short)
