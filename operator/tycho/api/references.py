"""What a manifest points at: image references, store and input URLs, literal env values.

Pure checks, called by ``tycho.api.validation.check``; each yields (field path, what is
wrong, fix). Refused: image references outside the distribution reference grammar (what
every registry client parses), URL schemes the store cannot serve, relative local paths
(relative to what? the operator and a laptop disagree), credentials inside URLs (they end
up in records, status and logs), and literal values that are secrets (use
``valueFrom.secretKeyRef``: Secret values never enter keys, records or status).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tycho.api import grammar, problems

if TYPE_CHECKING:
    from tycho.api import models

Found = tuple[str, str, str]

DEFAULT_STORE_URL = "file://.tycho/store"
"""The store of a manifest that names none, and of the CLI without ``--store``: under the
working directory (the only place a relative store URL is accepted)."""

_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_COMPONENT}(?:\.{_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = (
    rf"^(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")
"""github.com/distribution/reference's grammar: [domain[:port]/]path[:tag][@digest]."""
IMAGE_MAX = 512
IMAGE_DIGEST = r"@sha256:[0-9a-f]{64}$"
"""How a sha256 image digest must look: 64 lowercase hex digits."""

STORE_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "abfss")
"""Where a store can live: fsspec file systems that can be written."""
INPUT_SCHEMES = (*STORE_SCHEMES, "http", "https")
"""Where external input data can be read from."""
SECRET_NAME = r"(?i)(secret|passw(or)?d|token|api_?key|access_?key|private_?key|credential|auth)"
SECRET_VALUE = (
    r"(AKIA|ASIA)[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")
SECRET_MIN_LENGTH = 8
"""A literal under a secret-sounding name is refused from this length on (shorter ones are flags)."""

# The grammar of URLs, as regular expressions both this module (Python's re) and the
# CRD's CEL rules (tycho.api.rules, RE2) apply, so a URL means the same on both sides.
URL_WITH_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"
URL_RELATIVE_FILE = r"^file://[^/]"
"""``file://PATH`` without the third slash: relative to what? (the operator and a laptop disagree)."""
URL_CREDENTIALS = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@"
"""``user:password@`` in the authority: they end up in records, status and logs."""
URL_SECRET_QUERY = r"(?i)[?&][^=&#]*(signature|token|secret|password|sig|key|credential)[^=&#]*="
"""A signed URL's signature or a token in the query string."""
URL_CLIMBS = r"^([^?#]*/)?\.\.([/?#]|$)"
"""A ``..`` path segment."""


def scheme_pattern(schemes: tuple[str, ...]) -> str:
    """A URL whose scheme is one of ``schemes`` (lowercase, as the store libraries want it)."""
    return r"^(" + "|".join(schemes) + r")://"


def image(value: str, path: str) -> Iterable[Found]:
    if not value.strip():
        return  # reported as empty elsewhere
    if len(value) > IMAGE_MAX or not grammar.regex(IMAGE_REFERENCE).match(value):
        yield (path, f"{value!r} is not an image reference", "write [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST] "
               "with a lowercase repository, e.g. ghcr.io/acme/stage:1.2@sha256:<64 hex>")
        return
    if "@sha256:" in value and not grammar.regex(IMAGE_DIGEST).search(value):
        yield (path, "a sha256 image digest has 64 lowercase hex digits", "copy the digest from the registry")


def url(value: str, path: str, schemes: tuple[str, ...], default: str | None = None,
        relative_ok: bool = False) -> Iterable[Found]:
    """What is wrong with a URL a manifest or a flag gives. ``relative_ok``: a path on this
    machine relative to the working directory is fine (a flag, never a manifest)."""
    if value == default:
        return
    if not value.strip():
        yield (path, "is empty", "give a file:///PATH or an object store URL such as s3://BUCKET/PREFIX")
        return
    if not grammar.regex(URL_WITH_SCHEME).match(value):
        if not (value.startswith("/") or relative_ok):
            yield (path, f"{value!r} is a relative path", "give an absolute file:///PATH or an object store URL")
    elif not grammar.regex(scheme_pattern(schemes)).match(value):
        scheme = value.split("://", 1)[0]
        yield (path, f"the scheme {problems.escape(scheme)}:// cannot be served here",
               "use one of (in lowercase): " + ", ".join(f"{s}://" for s in schemes))
        return
    if grammar.regex(URL_CREDENTIALS).match(value):
        yield (path, "the URL holds credentials (user:password@)",
               "remove them: stores get credentials from spec.storage.secretRef (cluster) or the environment")
    if grammar.regex(URL_SECRET_QUERY).search(value):
        yield (path, "the URL carries a signature or token in its query",
               "do not put credentials in URLs: they are recorded in provenance; grant access through the store's "
               "credentials instead")
    if grammar.regex(URL_RELATIVE_FILE).match(value) and not relative_ok:
        yield (path, f"{value!r} is a relative path", "give an absolute file:///PATH (relative to what? the "
               "operator and a laptop disagree)")
    if grammar.regex(URL_CLIMBS).match(value):
        yield (path, "the path climbs with '..'", "give the path without '..'")


def env_value(var: models.EnvVar, path: str) -> Iterable[Found]:
    if var.value is None or not var.value.strip():
        return
    named = (grammar.regex(SECRET_NAME).search(var.name) and len(var.value) >= SECRET_MIN_LENGTH
             and not var.value.startswith(("/", "file:")))
    if named or grammar.regex(SECRET_VALUE).search(var.value):
        yield (f"{path}.value", f"{var.name} holds what looks like a secret as a literal value (it would be "
               "recorded in provenance and the cache key)",
               f"store it in a Secret and use valueFrom.secretKeyRef: {{name: SECRET, key: {var.name}}}")


def check(spec: models.Spec) -> Iterable[Found]:
    yield from url(spec.storage.url, "spec.storage.url", STORE_SCHEMES, default=DEFAULT_STORE_URL)
    for i, stage in enumerate(spec.stages):
        base = f"spec.stages[{i}]"
        yield from image(stage.image, f"{base}.image")
        for j, inp in enumerate(stage.inputs):
            if inp.url is not None:
                yield from url(inp.url, f"{base}.inputs[{j}].url", INPUT_SCHEMES)
        for j, var in enumerate(stage.env):
            yield from env_value(var, f"{base}.env[{j}]")
