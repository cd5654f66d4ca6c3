"""What a command's arguments name, resolved and checked: the manifest (with ``--set``),
the store, the executor, whose signatures count, the runs a user typed.

Every check raises ``problems.InvalidInput`` naming the flag (or variable) and the fix,
so ``tycho.cli.app`` turns it into exit 2 and one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tycho.api import problems, references

if TYPE_CHECKING:
    from tycho.api import models
    from tycho.executors import process
    from tycho.provenance import audit, store as store_mod

STORE_ENV = "TYCHO_STORE"
LOCAL_STATE = Path(".tycho")
"""A local run's work folders, logs and signing key, under the working directory."""


def store_url(args: argparse.Namespace, pipeline: models.ExperimentPipeline | None = None) -> str:
    """``--store``, else ``$TYCHO_STORE``, else the manifest's ``spec.storage.url``, else the
    local default; a URL the store cannot serve is refused naming where it came from."""
    for where, given in (("--store", getattr(args, "store", None)), (STORE_ENV, os.environ.get(STORE_ENV))):
        if given is not None:
            check_store_url(given, where)
            return given
    return pipeline.spec.storage.url if pipeline else references.DEFAULT_STORE_URL


def check_store_url(url: str, where: str) -> None:
    found = list(references.url(url, where, references.STORE_SCHEMES, relative_ok=True))
    if found:
        raise problems.InvalidInput([problems.Problem(*f) for f in found])
    from tycho.provenance import store as store_mod

    if (missing := store_mod.missing_backend(url)) is not None:
        raise problems.InvalidInput([problems.Problem(where, missing, "install the fsspec package for it "
                                                      "(s3fs ships with Tycho), or use file:// or s3://")])


def existing_store_url(args: argparse.Namespace) -> str:
    """The store a reading command reads: a local store named by ``--store`` or
    ``$TYCHO_STORE`` must exist (a typo must not read as an empty, verified store)."""
    url = store_url(args)
    given = getattr(args, "store", None) is not None or os.environ.get(STORE_ENV) is not None
    root = Path(url.removeprefix("file://"))
    if given and ("://" not in url or url.startswith("file://")) and not root.is_dir():
        where = "--store" if getattr(args, "store", None) is not None else STORE_ENV
        raise problems.InvalidInput([problems.Problem(where, f"no store at {problems.escape(str(root))}",
                                                      "give the store a run wrote (tycho run --store URL)")])
    return url


def store(args: argparse.Namespace) -> store_mod.Store:
    """The store a reading command reads (it must exist when named)."""
    from tycho.provenance import store as store_mod

    return store_mod.Store(existing_store_url(args))


def manifest(args: argparse.Namespace) -> models.ExperimentPipeline:
    """The manifest named by ``FILE``, validated, with ``--set`` applied."""
    from tycho.api import overrides, validation

    path = Path(args.file)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise problems.InvalidManifest([problems.Problem(problems.escape(str(path)), what,
                                                         "give the path of the manifest (a YAML file)")])
    pipeline = validation.load_bytes(path.read_bytes())
    items = getattr(args, "set", None) or []
    return overrides.apply(pipeline, items) if items else pipeline


def executor(args: argparse.Namespace, reporter: process.Listener) -> process.ProcessExecutor:
    """The subprocess executor, or with ``--executor container`` the container executor
    (raises LookupError when no engine is found)."""
    from tycho.executors import process

    work, logs = LOCAL_STATE / "work", Path(getattr(args, "logs", None) or LOCAL_STATE / "logs")
    if getattr(args, "executor", None) == "container":
        from tycho.executors import container

        return container.make(work, logs, reporter, args.engine)
    return process.ProcessExecutor(work, logs, reporter)


def trusted_keys(args: argparse.Namespace, store: store_mod.Store) -> audit.Keys:
    """Whose signatures count: ``--key`` files when given (pinned), else the configured
    signing key (``$TYCHO_SIGNING_KEY`` or the local one), ``$TYCHO_TRUSTED_KEYS``, else
    the keys the store holds (tycho.provenance.audit says which)."""
    from tycho.provenance import audit, signing

    if getattr(args, "key", None):
        return audit.file_keys(args.key)
    local = Path(os.environ.get(signing.KEY_ENV) or LOCAL_STATE / "signing.key")
    return audit.trusted_keys(store, [local] if local.is_file() else [])


def index(args: argparse.Namespace) -> Any:
    """The store's run index, brought up to date (see tycho.index.db)."""
    from tycho.index import db

    url = existing_store_url(args)
    try:
        return db.open_synced(url, getattr(args, "index", None))
    except OSError as err:
        where = "--index" if getattr(args, "index", None) else "TYCHO_INDEX_DIR"
        raise problems.InvalidInput([problems.Problem(where, f"cannot keep the run index there: {err}",
                                                      "point it at a folder this user can write")]) from None


def run_ids(args: argparse.Namespace, *typed: str) -> list[str]:
    """Full run ids for what the user typed (an id, a unique prefix or part of it), by the index."""
    opened = index(args)
    try:
        return [opened.resolve(t) for t in typed]
    finally:
        opened.close()
