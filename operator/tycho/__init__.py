"""Tycho: reproducible ML pipelines on Kubernetes, with provenance for every output.

The package is imported as ``tycho``; its source folder is ``operator/`` (that folder
is deliberately not a package, so it never shadows the standard library's ``operator``).
"""

__version__ = "0.1.0"
