"""Signed records: DSSE envelopes (in-toto attestation bundle format) with Ed25519 keys.

The stage wrapper signs the exact bytes of each record it writes; the envelope is stored
as one line of ``attestations/<run>/<stage>.intoto.jsonl`` (``layout.attestation_rel``),
the JSON Lines bundle of the in-toto attestation framework, so standard verifiers
(``cosign verify-blob-attestation``, in-toto's and securesystemslib's DSSE verifiers)
accept it. The private key is a PEM file (PKCS#8): ``TYCHO_SIGNING_KEY`` names it; on a
cluster it is a Secret mounted only into the pod's publishing container. Public keys are
also stored under ``keys/`` for convenience; trust is pinned with ``tycho verify --key``.
Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md

Keys in the encodings Tycho writes (``ensure_key``, ``public_pem``) are read by their
fixed RFC 8410 layout: every cache hit checks a signature, and importing cryptography's
general ``serialization`` module (SSH, PKCS#12 and cipher support with it) costs an
all-hits ``tycho run`` more than its signature checks. Any other encoding goes through
that module, so whatever it accepts is still accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_ENV = "TYCHO_SIGNING_KEY"
PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER of an unencrypted PKCS#8 Ed25519 private key up to its 32 raw bytes (RFC 8410 §7)."""
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
"""DER of an Ed25519 SubjectPublicKeyInfo up to its 32 raw bytes (RFC 8410 §4)."""


class Signature(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    keyid: str = ""
    sig: str


class Envelope(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    payloadType: str
    payload: str
    signatures: list[Signature]

    def encode(self) -> bytes:
        """One line of an ``.intoto.jsonl`` bundle."""
        return (self.model_dump_json() + "\n").encode()


class BadSignature(Exception):
    """An envelope that does not verify, or does not sign what it should."""


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def keyid(public: ed25519.Ed25519PublicKey) -> str:
    """sha256 of the raw public key: names the key in envelopes and under ``keys/``."""
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()


def public_pem(public: ed25519.Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _raw(pem: bytes, label: bytes, prefix: bytes) -> bytes | None:
    """The 32 raw key bytes of a one-block PEM whose DER is ``prefix`` + 32 bytes, else None."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != b"-----BEGIN " + label + b"-----" or lines[-1] != b"-----END " + label + b"-----":
        return None
    try:
        der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None
    return der[len(prefix):] if len(der) == len(prefix) + 32 and der.startswith(prefix) else None


def load_private(path: str | Path) -> ed25519.Ed25519PrivateKey:
    data = Path(path).read_bytes()
    raw = _raw(data, b"PRIVATE KEY", PKCS8_PREFIX)
    if raw is not None:
        return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public(data: bytes) -> ed25519.Ed25519PublicKey:
    raw = _raw(data, b"PUBLIC KEY", SPKI_PREFIX)
    if raw is not None:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(data)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def ensure_key(path: Path) -> Path:
    """A private key at ``path``, created (mode 0600) if there is none yet."""
    if not path.is_file():
        from cryptography.hazmat.primitives import serialization

        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)  # never replace a key another process made meanwhile
        except FileExistsError:
            pass
        tmp.unlink()
    return path


def configured_key() -> ed25519.Ed25519PrivateKey | None:
    """The signing key ``TYCHO_SIGNING_KEY`` names, if any."""
    path = os.environ.get(KEY_ENV)
    return load_private(path) if path else None


def sign(payload: bytes, key: ed25519.Ed25519PrivateKey) -> Envelope:
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return Envelope(payloadType=PAYLOAD_TYPE, payload=base64.b64encode(payload).decode(),
                    signatures=[Signature(keyid=keyid(key.public_key()), sig=base64.b64encode(sig).decode())])


def parse_bundle(data: bytes) -> list[Envelope]:
    """The envelopes of an ``.intoto.jsonl`` bundle."""
    try:
        return [Envelope.model_validate_json(line) for line in data.splitlines() if line.strip()]
    except (pydantic.ValidationError, ValueError) as err:
        raise BadSignature(f"not a DSSE envelope: {str(err).splitlines()[0]}") from None


def payload_of(envelope: Envelope) -> bytes:
    try:
        return base64.b64decode(envelope.payload, validate=True)
    except ValueError:
        raise BadSignature("payload is not base64") from None


def verify(envelope: Envelope, payload: bytes, keys: dict[str, ed25519.Ed25519PublicKey]) -> str:
    """The keyid that signed exactly ``payload``; raises ``BadSignature`` otherwise. A
    signature naming a keyid is checked with that key only."""
    if envelope.payloadType != PAYLOAD_TYPE:
        raise BadSignature(f"payloadType is {envelope.payloadType!r}, not {PAYLOAD_TYPE}")
    signed = payload_of(envelope)
    if base64.b64encode(signed).decode() != envelope.payload:
        raise BadSignature("payload is not canonical base64")
    if signed != payload:
        raise BadSignature("signs other bytes than the record holds")
    for item in envelope.signatures:
        candidates = ([keys[item.keyid]] if item.keyid in keys else []) if item.keyid else list(keys.values())
        for public in candidates:
            try:
                public.verify(base64.b64decode(item.sig), pae(envelope.payloadType, signed))
                return keyid(public)
            except (InvalidSignature, ValueError):
                continue
    if not keys:
        raise BadSignature("no public key to check it against")
    raise BadSignature("no signature verifies with a trusted key")
