"""Which Python distributions a stage actually used.

A subprocess stage has no image digest: its environment is this machine's Python. Keying
it on every installed distribution would retrain models whenever a linter is installed;
keying it on nothing would miss a numpy upgrade. So every Python process of the stage
notes the top-level modules it imported (a ``sitecustomize`` put first on
``PYTHONPATH``, writing at exit to ``$TYCHO_IMPORTS``), the wrapper maps them to
distributions and versions, and the record and cache entry keep that map. A cache hit
needs the same versions installed now (``mismatch``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

HOOK = '''\
"""Installed by tycho's stage wrapper: notes the modules this process imported."""
import atexit as _atexit


def _tycho_note_imports():
    import os
    import sys
    path = os.environ.get("TYCHO_IMPORTS")
    if path:
        names = sorted({m.split(".", 1)[0] for m in list(sys.modules)})
        with open(path, "a", encoding="utf-8") as f:
            f.write("\\n".join(names) + "\\n")


_atexit.register(_tycho_note_imports)
'''


def install_hook(folder: Path) -> Path:
    """Write the hook into ``folder`` (put first on the stage's PYTHONPATH); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOOK)
    return folder


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def installed() -> dict[str, str]:
    """Normalised distribution name -> version, for this interpreter (read once)."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(_normal(name), dist.version)
    return out


def distributions(modules: Iterable[str]) -> dict[str, str]:
    """The distributions (and versions) that provide these top-level modules."""
    providers = importlib.metadata.packages_distributions()
    versions = installed()
    out: dict[str, str] = {}
    for module in set(modules):
        for dist in providers.get(module, []):
            name = _normal(dist)
            if name in versions and name != "tycho":
                out[name] = versions[name]
    return dict(sorted(out.items()))


def read(path: Path) -> dict[str, str]:
    """The distributions behind the modules noted in ``path`` (empty if nothing was noted)."""
    if not path.is_file():
        return {}
    return distributions(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@functools.lru_cache(maxsize=1)
def _dist_info_versions() -> dict[str, str]:
    """Normalised name -> version from the names of ``*.dist-info`` folders on sys.path:
    one directory listing per path entry, no metadata parsed (a cache-hit check is hot)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info") and "-" in folder:
                name, _, ver = folder.removesuffix(".dist-info").rpartition("-")
                found.setdefault(_normal(name), ver)
    return found


@functools.lru_cache(maxsize=None)
def version(name: str) -> str | None:
    """The installed version of one distribution."""
    quick = _dist_info_versions().get(name)
    if quick is not None:
        return quick
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def mismatch(recorded: Mapping[str, str]) -> list[str]:
    """How the installed distributions differ from those a stage used, e.g. ``numpy 1.26.4 -> 2.0.0``."""
    now = {name: version(name) for name in recorded}
    return [f"{name} {v} -> {now[name] or '(not installed)'}" for name, v in sorted(recorded.items()) if now[name] != v]
