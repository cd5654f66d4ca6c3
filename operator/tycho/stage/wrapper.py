"""Runs one stage: fetch inputs → run user code → hash outputs → store them → write the record.

Every executor runs this through ``tycho stage-exec``: as a subprocess on this machine,
as a container's entrypoint, as a stage Job's command. User code only sees directories
and files; it never gets storage credentials. The phases, each a module:

- fetch (``tycho.stage.fetch``): materialise inputs and params, verify every digest (store access);
- run (``tycho.stage.supervise``): the user's command, no store access;
- publish (``tycho.stage.publish``): outputs, record, indexes (store access).

Locally ``execute`` runs all three in this process; a stage pod runs each in a container
of its own (``tycho stage-exec --phase``). ``TYCHO_INVOCATION_ID`` replaces
``invocation_id`` (a stage Job passes its own UID, known only once the Job exists).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from tycho.provenance import store as store_mod
from tycho.stage import fetch, publish, supervise
from tycho.stage.invocation import Invocation, Result
from tycho.stage.work import Log, Work


def execute(inv: Invocation, log: Log = print, stop: threading.Event | None = None) -> Result:
    """All three phases in this process (local executors): the store credentials stay in
    the wrapper, the user's process gets only its contract environment.

    Raises StageFailed (nothing published) or StageCancelled (``stop`` was set)."""
    store = store_mod.Store(inv.store)
    with tempfile.TemporaryDirectory(prefix=f"tycho-{inv.stage}-") as tmp:
        work = Work(Path(tmp))
        fetch.fetch(inv, store, work)
        supervise.run(inv, work, log, stop, store)
        return publish.publish(inv, store, work, log)
