"""The work directory a stage's phases share, and the rules for reading what stage code
left in it.

On a cluster the three folders are volumes of the stage pod; locally they are one
temporary folder. Processes that hold the store credentials (fetch, the live-metrics
sidecar, publish) read what the stage wrote only through ``read_regular`` and after
``check_out``: a stage cannot read the credentials, but it could name them with a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from tycho.stage.invocation import Invocation

Log = Callable[[str], None]


class StageFailed(Exception):
    """The stage did not produce its outputs; the message says why and what to look at."""


class StageCancelled(Exception):
    """The stage was stopped on request (SIGTERM/SIGINT); nothing was published."""


class Work:
    """The work directory the phases share (on a cluster: three volumes of the stage pod).

    ``in/`` (inputs, params; written by fetch, read-only to the stage), ``out/``
    (outputs, metrics, what the run noted; written by the stage, read by publish) and
    ``state/`` (what fetch verified; never mounted where stage code runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs, self.params = root / "in" / "inputs", root / "in" / "params.json"
        self.out = root / "out"
        self.outputs, self.metrics = self.out / "outputs", self.out / "metrics.jsonl"
        self.imports, self.frameworks, self.ran = (self.out / "imports.txt", self.out / "frameworks.jsonl",
                                                   self.out / "run.json")
        self.checks = self.out / "checks.jsonl"
        self.code = self.out / "code.tar"
        """The code the stage ran, archived by the run phase when it is not in the store yet
        (in an image: only the run phase sees the image's code)."""
        self.sbom = self.out / "image-sbom.cdx.json"
        """The SBOM of the image the run phase ran in (a copy of ``$TYCHO_IMAGE_SBOM``)."""
        self.fetched = root / "state" / "fetched.json"


def read_regular(path: Path, offset: int = 0) -> bytes:
    """A file the stage wrote, read by a process that holds the store credentials (the
    live-metrics sidecar, publish): never through a symlink the stage may have put there
    (to ``/proc/self/environ``, to the signing key)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        f.seek(offset)
        return f.read()


def check_out(inv: Invocation, work: Work) -> None:
    """What the run phase left in ``out/`` holds regular files and folders only. Publish
    runs with the store credentials and the signing key and reads these paths: a symlink
    would carry whatever it points to into the store as an output (a stage in a container
    or pod cannot read the credentials, but it can name them)."""
    for dirpath, dirnames, filenames in os.walk(work.out):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                raise StageFailed(f"stage {inv.stage!r}: {path.relative_to(work.root)} is {kind}; outputs, metrics "
                                  "and checks must be regular files (copy the file instead of linking it)")


def missing(inv: Invocation, outputs: Path) -> list[str]:
    """The declared outputs the stage did not write."""
    return [o.name for o in inv.outputs
            if not ((outputs / o.name).is_dir() if o.type == "directory" else (outputs / o.name).is_file())]


def code_root(inv: Invocation) -> Path:
    """Where the stage's code is, for the process that runs it (``TYCHO_CODE_DIR`` runs a
    cluster stage's invocation where the code lives elsewhere than in the image)."""
    return Path(os.environ.get("TYCHO_CODE_DIR") or inv.workdir)
