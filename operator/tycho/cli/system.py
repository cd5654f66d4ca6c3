"""Commands for installing and running Tycho on a cluster: ``crd`` (the CustomResource-
Definition generated from the API models) and ``operator`` (the Kubernetes operator)."""

from __future__ import annotations

import argparse
import sys

from tycho.api import problems
from tycho.cli import arguments


def register(sub: arguments.SubParsers) -> None:
    crd_ = sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API models")
    crd_.set_defaults(handler=crd, console=False)
    crd_.add_argument("--admission-rules", action="store_true",
                      help="print the validations of the chart's admission policy instead (charts/tycho/files/)")
    op = sub.add_parser("operator", help="run the Kubernetes operator (settings from TYCHO_* env, see tycho.settings)")
    op.set_defaults(handler=operator, console=False)
    op.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def crd(args: argparse.Namespace) -> int:
    from tycho.api import crd as crd_mod

    sys.stdout.write(crd_mod.render_admission_rules() if args.admission_rules else crd_mod.render())
    return 0


def operator(args: argparse.Namespace) -> int:
    from tycho import settings
    from tycho.controller import main as operator_main
    from tycho.kube import client

    cfg = settings.Settings.from_env()  # refused settings and no cluster: one line each, before anything starts
    for name, near in settings.Settings.unknown().items():
        print(f"warning {name} is not a setting Tycho reads" + (f" (did you mean {near}?)" if near else ""),
              file=sys.stderr)
    try:
        client.api_client()
    except OSError as err:
        raise problems.InvalidInput([problems.Problem("KUBECONFIG", f"cannot read it: {err}",
                                                      "point it at a kubeconfig file")]) from None
    return operator_main.run(cfg, verbose=args.verbose)
