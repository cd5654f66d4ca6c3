"""``tycho operator``: runs the kopf operator with the handlers of ``tycho.controller.handlers``.

Settings come from the environment (``tycho.settings``; the Helm chart maps its values
onto them): watched namespaces, ports, peering. Liveness is kopf's own endpoint
(``/healthz`` on Settings.health_port); Prometheus metrics are served on
Settings.metrics_port by the startup handler.
"""

from __future__ import annotations

import asyncio
import logging
import random

import kopf

from tycho.settings import Settings


def run(cfg: Settings | None = None, *, verbose: bool = False) -> int:
    cfg = cfg or Settings.from_env()
    from tycho.controller import handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.configure(verbose=verbose, log_prefix=True)
    logging.getLogger("tycho").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    if not verbose:
        # kopf logs every handler call ("Handler 'pipeline_event' succeeded") at INFO: one line
        # per pipeline update. The operator's own INFO lines (tycho.operator) tell the story instead.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(
        clusterwide=not cfg.namespaces, namespaces=list(cfg.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{cfg.health_port}/healthz",
        standalone=not cfg.peering, peering_name=cfg.peering or None,
        # Peers of equal priority freeze each other; distinct random priorities make one active.
        priority=random.randint(1, 32767) if cfg.peering else 0))
    return 0
