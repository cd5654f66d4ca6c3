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
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


def _tycho_note_frameworks():
    import json
    import os
    import sys
    path = os.environ.get("TYCHO_FRAMEWORKS")
    if not path:
        return
    found = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            info = {"version": torch.__version__, "cuda": torch.version.cuda,
                    "deterministicAlgorithms": torch.are_deterministic_algorithms_enabled(),
                    "cudnnDeterministic": torch.backends.cudnn.deterministic,
                    "cudnnBenchmark": torch.backends.cudnn.benchmark,
                    "matmulTF32": torch.backends.cuda.matmul.allow_tf32}
            if torch.cuda.is_initialized():
                info["cudnn"] = torch.backends.cudnn.version()
                info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            found["torch"] = info
        except Exception:
            pass
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            found["jax"] = {"version": jax.__version__, "backend": jax.default_backend(),
                            "devices": [str(d.device_kind) for d in jax.devices()],
                            "x64": bool(jax.config.read("jax_enable_x64"))}
        except Exception:
            pass
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "__version__"):
        found["tensorflow"] = {"version": str(tf.__version__)}
        try:
            found["tensorflow"]["opDeterminism"] = bool(tf.config.experimental.is_op_determinism_enabled())
        except Exception:
            pass
    if found:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(found, sort_keys=True, default=str) + "\\n")


_atexit.register(_tycho_note_imports)
_atexit.register(_tycho_note_frameworks)
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


@functools.lru_cache(maxsize=1)
def _providers() -> Mapping[str, list[str]]:
    """Top-level module -> distributions providing it (scanning them all takes a while: once)."""
    return importlib.metadata.packages_distributions()


def distributions(modules: Iterable[str]) -> dict[str, str]:
    """The distributions (and versions) that provide these top-level modules."""
    providers = _providers()
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


@functools.cache
def version(name: str) -> str | None:
    """The installed version of one distribution."""
    quick = _dist_info_versions().get(name)
    if quick is not None:
        return quick
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def frameworks(path: Path) -> dict[str, Any]:
    """Framework facts the stage's processes noted (the last process to note one wins)."""
    found: dict[str, Any] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found.update(json.loads(line))
            except ValueError:
                continue
    return found


def mismatch(recorded: Mapping[str, str]) -> list[str]:
    """How the installed distributions differ from those a stage used, e.g. ``numpy 1.26.4 -> 2.0.0``."""
    now = {name: version(name) for name in recorded}
    return [f"{name} {v} -> {now[name] or '(not installed)'}" for name, v in sorted(recorded.items()) if now[name] != v]
