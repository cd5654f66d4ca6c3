"""The flags commands share, and the types that check a flag's value as argparse reads it
(a bad value is one ``error --flag: ...`` line and exit 2, see ``tycho.cli.app``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from tycho.api import references

SubParsers = Any
"""argparse's ``_SubParsersAction`` (a private type)."""


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An int in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {bounds}")
        return value

    parse.__name__ = "integer"
    return parse


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a positive number of seconds")
    return value


def nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    return text


PORT = integer(1, 65535)


def host_name(text: str) -> str:
    """A host name the board may answer to (``tycho.board.hosts.pattern``)."""
    from tycho.board import hosts

    try:
        return hosts.pattern(text)
    except hosts.BadHost as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def command(sub: SubParsers, name: str, help_: str, handler: Callable[..., int], *, manifest: bool = False,
            store: bool = True) -> argparse.ArgumentParser:
    """A subcommand with the flags every command of its kind takes."""
    sp: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    sp.set_defaults(handler=handler)
    if manifest:
        sp.add_argument("file", help="ExperimentPipeline manifest (YAML)")
        sp.add_argument("--set", action="append", metavar="STAGE.PARAM=VALUE",
                        help="change a param (repeatable); +STAGE.PARAM=VALUE adds one the stage does not declare; "
                             "STAGE.sweep.trials=N changes a sweep")
    if store:
        sp.add_argument("--store", type=nonempty, help="store URL (overrides spec.storage.url; env TYCHO_STORE; "
                        f"default {references.DEFAULT_STORE_URL})")
    sp.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    return sp


def executor_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--executor", choices=["subprocess", "container"], default="subprocess",
                    help="subprocess (default): stages run in this machine's Python; container: each stage "
                         "runs in its image (podman or docker), sharing cache keys with a cluster")
    sp.add_argument("--engine", choices=["podman", "docker"],
                    help="container engine for --executor container (default $TYCHO_CONTAINER_ENGINE, else "
                         "docker when its daemon answers, else podman)")


def keys_option(sp: argparse.ArgumentParser, help_: str = "trusted public key (repeatable)") -> None:
    sp.add_argument("--key", action="append", metavar="PEM", help=help_)
