"""The storage layout: every path Tycho reads or writes under a store root, built here only.

Everything else names store content by these relative paths (run summaries, cache
entries, status) and never by absolute URI, so a store copied with ``cp -r`` or
``aws s3 sync`` to another place still resolves. Records, which must name content by
URIs with a scheme (SLSA ResourceDescriptor), use the ``tycho:`` scheme: ``tycho:PATH``
is PATH relative to the root of the store that holds the record (``store_uri``), so a
record means the same thing in every copy of its store. ``rel`` reads all three forms:
relative paths, ``tycho:`` URIs, and the absolute URIs older records hold (cut at the
first layout directory they contain).

```
objects/sha256/<hex>                    content-addressed blobs (outputs, trees, code archives, metrics)
records/<run-id>/<stage>.json           provenance record of one stage execution, write-once
records/<run-id>/<stage>/trial-<n>.json   ... of one trial of a sweep
runs/<run-id>.json                      run summary (tycho.provenance.documents.RunSummary)
pipelines/<name>/runs/<created>_<run-id>.json   per-pipeline index of runs, in time order
cache/<cache-key>.json                  cache entry: key -> record + output digests
producers/<hex>.json                    which record produced a digest (lineage)
live/<run-id>/<stage>.metrics.jsonl     metrics of a stage while it runs (replaced as it grows)
attestations/<run-id>/<stage>.intoto.jsonl   the record signed: a DSSE envelope per line (in-toto bundle)
attestations/<run-id>.intoto.jsonl      the finished run's summary, sealed (signed Statement of its digest)
keys/<keyid>.pub                        public keys that signed attestations (PEM; pin trust with verify --key)
```

Outside the store, on the machine that reads it: the run index (``index_file``), an SQLite
cache derived from ``runs/`` that ``tycho runs``, ``show``, ``diff`` and ``board`` query.
"""

from __future__ import annotations

import hashlib
import os

OBJECTS = "objects/sha256"
RECORDS = "records"
RUNS = "runs"
PIPELINES = "pipelines"
CACHE = "cache"
PRODUCERS = "producers"
LIVE = "live"
ATTESTATIONS = "attestations"
KEYS = "keys"
_TOP = (OBJECTS, RECORDS, RUNS, PIPELINES, CACHE, PRODUCERS, LIVE, ATTESTATIONS, KEYS)
SCHEME = "tycho:"
"""Records name store content as ``tycho:<store-relative path>``."""


def object_rel(sha256: str) -> str:
    return f"{OBJECTS}/{sha256}"


def _execution(root: str, run_id: str, stage: str, trial: int | None, suffix: str) -> str:
    """Where a file about one execution lives: a stage's beside its run's others, a sweep
    trial's in the stage's folder."""
    if trial is not None:
        return f"{root}/{run_id}/{stage}/trial-{trial}{suffix}"
    return f"{root}/{run_id}/{stage}{suffix}"


def record_rel(run_id: str, stage: str, trial: int | None = None) -> str:
    return _execution(RECORDS, run_id, stage, trial, ".json")


def summary_rel(run_id: str) -> str:
    return f"{RUNS}/{run_id}.json"


def pipeline_runs_dir(pipeline: str) -> str:
    return f"{PIPELINES}/{pipeline}/runs"


def pipeline_run_marker(pipeline: str, created_at: str, run_id: str) -> str:
    """A file per run whose name sorts by creation time: listing the folder orders runs."""
    return f"{pipeline_runs_dir(pipeline)}/{created_at}_{run_id}.json"


def run_id_of_marker(name: str) -> str:
    return name.split("_", 1)[1].removesuffix(".json")


def run_of_record(rel_path: str) -> str | None:
    """The run id a record path names (``records/<run-id>/<stage>.json``, or a trial's)."""
    parts = rel(rel_path).split("/")
    return parts[1] if len(parts) in (3, 4) and parts[0] == RECORDS else None


def index_file(store_url: str, cache_home: str | None = None) -> str:
    """Where this machine keeps the run index of a store: one SQLite file per store URL
    under ``$TYCHO_INDEX_DIR`` (default ``$XDG_CACHE_HOME/tycho/index`` or ``~/.cache/...``).
    It is a cache: deleting it loses nothing (``tycho index rebuild``)."""
    home = cache_home or os.environ.get("TYCHO_INDEX_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tycho", "index")
    url = resolve_url(store_url).rstrip("/")
    return os.path.join(home, hashlib.sha256(url.encode()).hexdigest()[:20] + ".sqlite")


def cache_rel(key: str) -> str:
    return f"{CACHE}/{key}.json"


def suggestions_dir() -> str:
    return f"{CACHE}/suggestions"


def suggestions_rel(question: str) -> str:
    """A sweep batch's suggestions, by the digest of what they depend on (a memo)."""
    return f"{suggestions_dir()}/{question}.json"


def producer_rel(sha256: str) -> str:
    return f"{PRODUCERS}/{sha256}.json"


def live_metrics_rel(run_id: str, stage: str, trial: int | None = None) -> str:
    return _execution(LIVE, run_id, stage, trial, ".metrics.jsonl")


def attestation_rel(run_id: str, stage: str, trial: int | None = None) -> str:
    return _execution(ATTESTATIONS, run_id, stage, trial, ".intoto.jsonl")


def run_attestation_rel(run_id: str) -> str:
    """The seal of a finished run's summary (a signed in-toto Statement naming its bytes)."""
    return f"{ATTESTATIONS}/{run_id}.intoto.jsonl"


def key_rel(keyid: str) -> str:
    return f"{KEYS}/{keyid}.pub"


def store_uri(rel_path: str) -> str:
    """The URI a record uses for store content: valid in any copy of the store."""
    return SCHEME + rel_path


def rel(ref: str) -> str:
    """The store-relative path of a reference: a relative path is returned as it is, a
    ``tycho:`` URI loses its scheme; an absolute URI (older records, status fields) is cut
    at its first layout directory."""
    if ref.startswith(SCHEME):
        ref = ref[len(SCHEME):]
    if "://" not in ref and not ref.startswith("/"):
        if ".." in ref.split("/"):
            raise ValueError(f"{ref!r} climbs out of the store")
        return ref
    parts = ref.split("/")
    for i in range(len(parts)):
        joined = "/".join(parts[i:])
        if any(joined.startswith(top + "/") for top in _TOP):
            return joined
    raise ValueError(f"{ref!r} names nothing in a Tycho store (expected a path under one of: {', '.join(_TOP)})")


def digest_of(ref: str) -> str | None:
    """The sha256 an object reference names, if it names an object."""
    path = rel(ref)
    return path[len(OBJECTS) + 1:] if path.startswith(OBJECTS + "/") else None


def resolve_url(url: str) -> str:
    """Make a relative ``file://`` URL absolute (relative to the working directory)."""
    if url.startswith("file://"):
        path = url[len("file://"):]
        return "file://" + os.path.abspath(path)
    if "://" not in url:
        return "file://" + os.path.abspath(url)
    return url
