"""The object store: content-addressed blobs and write-once JSON documents on any fsspec URL.

Used by the stage wrapper (upload outputs, write records), by the engine (cache lookups,
run summaries) and by the CLI (lineage, reproduce). The paths inside a store are built by
``tycho.provenance.layout`` only.
Credentials come from the environment only (for S3: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), never from arguments that could be logged.

A local store (``file://``) is read and written with the standard library, and fsspec is
imported only when something asks for ``Store.fs``: a command that reads a local store
(an all-hits run, ``tycho runs``) does not pay for importing it.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tycho.provenance import hashing, jsondoc, layout

if TYPE_CHECKING:
    import fsspec


class WriteOnceViolation(Exception):
    """A record already exists: records are never overwritten."""


class IntegrityError(Exception):
    """Stored bytes do not hash to the digest they are stored under."""


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options from the environment (S3 endpoint for MinIO and friends)."""
    if url.startswith("s3://"):
        named = "AWS_ENDPOINT_URL" if os.environ.get("AWS_ENDPOINT_URL") else "TYCHO_S3_ENDPOINT"
        endpoint = os.environ.get(named)
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"{named}={endpoint!r} is not an http:// or https:// URL (fix: give the S3 endpoint, "
                             "e.g. http://127.0.0.1:9000 for a local MinIO, or unset it for AWS)")
        # No listing cache: another process (a stage pod) may have just written the key.
        # Bounded timeouts and retries: an unreachable store fails a stage attempt within about
        # a minute (the Job retries it as a new pod) instead of hanging on a dead connection.
        # Connections: the operator reads and writes many runs' objects at once.
        config: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 30, "max_pool_connections": 64,
                                  "retries": {"max_attempts": 4, "mode": "standard"}}
        opts: dict[str, Any] = {"use_listings_cache": False, "config_kwargs": config}
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
            config["s3"] = {"addressing_style": "path"}
        return opts
    return {}


def missing_backend(url: str) -> str | None:
    """Why this installation cannot open ``url`` (its fsspec backend is not installed), or
    None. A ``file://`` store needs nothing (and fsspec is not imported for it)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme in ("file", "local"):
        return None
    import fsspec

    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as err:
        return f"{scheme}:// cannot be opened here: {str(err).splitlines()[0]}"
    return None


def _precondition_failed(err: BaseException) -> bool:
    """An object store's answer to a conditional write whose object exists (HTTP 412)."""
    cause = err.__cause__ or err.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        return bool(response.get("Error", {}).get("Code") == "PreconditionFailed"
                    or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412)
    return False


class Store:
    """One store root. Paths passed to methods are relative to the root."""

    def __init__(self, url: str) -> None:
        self.url = layout.resolve_url(url).rstrip("/")
        self.local = self.url.startswith("file://")
        self._fs: fsspec.AbstractFileSystem | None = None
        if self.local:
            self.root = os.path.abspath(self.url[len("file://"):])
        else:
            self._fs, self.root = self._connect()

    def _connect(self) -> tuple[fsspec.AbstractFileSystem, str]:
        import fsspec

        if (missing := missing_backend(self.url)) is not None:
            raise ValueError(missing)

        fs, root = fsspec.core.url_to_fs(self.url, **storage_options(self.url))
        return fs, str(root)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the store (for streaming reads by other modules)."""
        if self._fs is None:
            self._fs = self._connect()[0]
        return self._fs

    # ---- addressing -------------------------------------------------------------------
    def _path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def uri(self, rel: str) -> str:
        """An absolute URI, for people to read: what Tycho stores names paths, not URIs."""
        return f"{self.url}/{rel}"

    def local_path(self, rel: str) -> Path:
        """Where a path lives on this machine's disk (local stores only)."""
        if not self.local:
            raise ValueError(f"{self.url} is not a local store")
        return Path(self._path(rel))

    # ---- blobs --------------------------------------------------------------------------
    def put_file(self, local: str | Path, sha256: str | None = None) -> str:
        """Store a file under its digest (computed if not given); returns the digest.

        An object already stored is kept only if it still hashes to its name: a corrupt
        one is replaced (the store heals on the next write of the same content)."""
        digest = sha256 or hashing.sha256_file(local)
        target = self._path(layout.object_rel(digest))
        if self.verify(digest):
            return digest
        if self.local:
            # Copy under a unique temporary name then rename: readers never see half a blob.
            os.makedirs(posixpath.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            shutil.copyfile(local, tmp)
            os.chmod(tmp, 0o444)  # stored bytes are never edited in place (views link to them)
            os.replace(tmp, target)
        else:
            self.fs.put_file(str(local), target)  # an S3 PUT is atomic
        return digest

    def put_bytes(self, data: bytes) -> str:
        """Store bytes under their digest; returns the digest."""
        digest = hashing.sha256_bytes(data)
        if not self.verify(digest):  # missing, or corrupt: (re)write it
            self._write_atomic(self._path(layout.object_rel(digest)), data, read_only=True)
        return digest

    def get_bytes(self, sha256: str) -> bytes:
        data = self._cat(self._path(layout.object_rel(sha256)))
        if hashing.sha256_bytes(data) != sha256:
            raise IntegrityError(f"object {sha256} in {self.url} does not hash to its name")
        return data

    def get_file(self, sha256: str, local: str | Path) -> None:
        """Fetch a blob and check it still hashes to its name."""
        source = self._path(layout.object_rel(sha256))
        if self.local:
            shutil.copyfile(source, local)
        else:
            self.fs.get_file(source, str(local))
        actual = hashing.sha256_file(local)
        if actual != sha256:
            raise IntegrityError(f"object {sha256} in {self.url} hashes to {actual}")

    def verify(self, sha256: str) -> bool:
        """True when the blob exists and its bytes still hash to its digest."""
        path = self._path(layout.object_rel(sha256))
        if self.local:
            try:
                with open(path, "rb") as f:
                    return hashing.sha256_stream(f) == sha256
            except FileNotFoundError:
                return False
        if not self.fs.exists(path):
            return False
        with self.fs.open(path, "rb", block_size=hashing.CHUNK) as f:
            return hashing.sha256_stream(f) == sha256

    # ---- documents ----------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        if self.local:
            return os.path.exists(self._path(rel))
        return bool(self.fs.exists(self._path(rel)))

    def write_bytes_once(self, rel: str, data: bytes) -> str:
        """Create a file that must not exist yet (records, attestations); returns its URI.
        Locally an exclusive create of a temporary name then a hard link: readers never see
        half a record, and a second writer fails. On S3 a conditional PUT
        (``If-None-Match: *``): of two writers racing (two retried pods of one stage), the
        store lets exactly one create it, and the other fails."""
        path = self._path(rel)
        if self.local:
            os.makedirs(posixpath.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "xb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise WriteOnceViolation(f"{self.uri(rel)} already exists; records are write-once") from None
            finally:
                os.unlink(tmp)
        else:
            try:
                self.fs.pipe_file(path, data, mode="create")
            except OSError as err:
                if not _precondition_failed(err):
                    raise
                raise WriteOnceViolation(f"{self.uri(rel)} already exists; records are write-once") from None
        return self.uri(rel)

    def write_json(self, rel: str, doc: Any) -> str:
        """Create or replace a JSON document (indexes, not records); atomic on local disks."""
        self._write_atomic(self._path(rel), jsondoc.encode(doc))
        return self.uri(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Create or replace a file that is not content-addressed (live metrics)."""
        self._write_atomic(self._path(rel), data)

    def delete(self, rel: str) -> None:
        """Remove a file that is not content-addressed (a live metrics file); gone is fine."""
        try:
            if self.local:
                os.unlink(self._path(rel))
            else:
                self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass

    def read_bytes(self, rel: str) -> bytes:
        return self._cat(self._path(rel))

    def _cat(self, path: str) -> bytes:
        if self.local:
            with open(path, "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(path))

    def _write_atomic(self, path: str, data: bytes, read_only: bool = False) -> None:
        """Readers see the old bytes or the new, never half: rename locally, one PUT on S3."""
        if self.local:
            os.makedirs(posixpath.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
            if read_only:
                os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def read_json_if_exists(self, rel: str) -> Any | None:
        """A document, or None when it does not exist: one request, not an existence check first."""
        try:
            return self.read_json(rel)
        except FileNotFoundError:
            return None

    def read_json(self, rel: str) -> Any:
        return json.loads(self._cat(self._path(rel)))

    def list(self, rel_dir: str) -> list[str]:
        """Names (not paths) directly under a directory, sorted; [] when it does not exist."""
        path = self._path(rel_dir)
        if self.local:
            try:
                return sorted(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                return []
        if not self.fs.exists(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))
