"""Shared plumbing for the digits stages: the Tycho stage contract and deterministic files.

Every stage reads its inputs, params and output locations from the environment set by
`tycho stage-exec` (docs/contracts.md, section 1) and must produce outputs that are a
pure function of inputs, params and code. `tycho reproduce` re-runs a stage and
compares output digests byte for byte, so everything written here avoids timestamps,
absolute paths and unordered iteration.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
import numpy.typing as npt

# Zip entries carry a DOS timestamp; 1980-01-01 is the earliest it can encode, and a
# fixed value keeps archives identical whenever and wherever they are written.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_COMPRESSLEVEL = 6
_ZIP_UNIX_FILE_MODE = 0o100644 << 16

T = TypeVar("T")


class StageError(Exception):
    """A failure the user can act on: reported as one clear message, exit code 1."""


@dataclass(frozen=True)
class Contract:
    """Where a stage finds its inputs, params and metrics file and puts its outputs."""

    inputs: Path
    outputs: Path
    params: dict[str, Any]
    metrics: Path
    stage: str

    def input(self, name: str) -> Path:
        """Path of a declared input; missing inputs are a wiring error worth naming."""
        path = self.inputs / name
        if not path.is_file():
            raise StageError(f"input {name!r} is missing: expected a file at $TYCHO_INPUTS/{name}")
        return path

    def output(self, name: str) -> Path:
        """Path the declared output `name` must be written to."""
        return self.outputs / name

    def param(self, name: str, default: T) -> T:
        """A param coerced to the type of its default, so typos in the yaml fail early."""
        value = self.params.get(name, default)
        return _coerce(name, value, default)

    def required_param(self, name: str) -> Any:
        """A param without a sensible default (e.g. the search space lists of tune)."""
        if name not in self.params:
            raise StageError(f"param {name!r} is required by stage {self.stage!r}")
        return self.params[name]


def _coerce(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise StageError(f"param {name!r} must be a boolean, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise StageError(f"param {name!r} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StageError(f"param {name!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise StageError(f"param {name!r} must be a string, got {value!r}")
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise StageError(f"param {name!r} must be a mapping, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise StageError(f"param {name!r} must be a list, got {value!r}")
        return value
    return value


def load_contract() -> Contract:
    """Read the TYCHO_* environment; a stage run by hand without it gets a clear error."""
    missing = [v for v in ("TYCHO_INPUTS", "TYCHO_OUTPUTS", "TYCHO_PARAMS", "TYCHO_METRICS") if not os.environ.get(v)]
    if missing:
        raise StageError(
            "not running under the Tycho stage contract: missing " + ", ".join(missing)
            + " (run the stage with `tycho run` or set the variables by hand)"
        )
    params_path = Path(os.environ["TYCHO_PARAMS"])
    try:
        params = json.loads(params_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StageError(f"cannot read params JSON from $TYCHO_PARAMS: {exc}") from exc
    if not isinstance(params, dict):
        raise StageError("$TYCHO_PARAMS must hold a JSON object")
    outputs = Path(os.environ["TYCHO_OUTPUTS"])
    outputs.mkdir(parents=True, exist_ok=True)
    return Contract(
        inputs=Path(os.environ["TYCHO_INPUTS"]),
        outputs=outputs,
        params=params,
        metrics=Path(os.environ["TYCHO_METRICS"]),
        stage=os.environ.get("TYCHO_STAGE", Path(sys.argv[0]).stem),
    )


def append_metrics(contract: Contract, values: Mapping[str, float | int], step: int | None = None) -> None:
    """Append one JSON line of metrics; NaN/inf are rejected because JSON cannot carry them."""
    line: dict[str, float | int] = {}
    for name in sorted(values):
        value = values[name]
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        if isinstance(value, (np.integer,)):
            value = int(value)
        if isinstance(value, (np.floating,)):
            value = float(value)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise StageError(f"metric {name!r} must be a finite number, got {value!r}")
        line[name] = value
    if step is not None:
        line["step"] = int(step)
    with contract.metrics.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")


def report_check(code: str, severity: str, message: str, details: Mapping[str, Any] | None = None) -> None:
    """Report a check through the contract file $TYCHO_CHECKS (one JSON line each): `fail`
    fails the stage with its code, `warn` is shown with the run; every check is recorded.
    Run without the contract (by hand), the check is printed instead."""
    if severity not in ("warn", "fail"):
        raise StageError(f"check {code}: severity must be warn or fail, got {severity!r}")
    line = json.dumps({"code": code, "severity": severity, "message": message, "details": dict(details or {})},
                      sort_keys=True, separators=(",", ":"))
    path = os.environ.get("TYCHO_CHECKS")
    if not path:
        print(f"check {line}", file=sys.stderr)
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


CHECK_LEVELS = ("fail", "warn", "off")


def check_level(contract: Contract, param: str, default: str) -> str:
    """The level of a check from its param: `fail` fails the stage, `warn` is shown with the
    run, `off` reports nothing (docs/checks.md). Anything else is a clear error, not a guess."""
    level = contract.param(param, default)
    if level not in CHECK_LEVELS:
        raise StageError(f"param {param!r} must be one of {', '.join(CHECK_LEVELS)}, got {level!r}")
    return level


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and a trailing newline: the same object always gives the same bytes."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    """Write via a sibling temp file and rename, so a killed stage never leaves half an output."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, canonical_json(obj))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def zip_bytes(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip archive whose bytes depend only on the entries (names, contents and their order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = _ZIP_UNIX_FILE_MODE
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=_ZIP_COMPRESSLEVEL)
    return buf.getvalue()


def npy_bytes(array: npt.ArrayLike) -> bytes:
    """The .npy encoding of an array, without pickles (object arrays are refused)."""
    arr = np.asarray(array)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: Mapping[str, npt.ArrayLike]) -> bytes:
    """A deterministic .npz (readable by np.load): sorted names, fixed zip metadata."""
    return zip_bytes((f"{name}.npy", npy_bytes(arrays[name])) for name in sorted(arrays))


def write_npz(path: Path, arrays: Mapping[str, npt.ArrayLike]) -> None:
    write_bytes(path, npz_bytes(arrays))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an .npz eagerly; pickled objects are never accepted."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def die(message: str) -> NoReturn:
    """Report a user-facing failure on stderr and exit 1 (the wrapper then publishes nothing)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def run_stage(main: Any) -> None:
    """Run a stage's main(contract), turning StageError into a clean message and exit 1."""
    try:
        main(load_contract())
    except StageError as exc:
        die(str(exc))
