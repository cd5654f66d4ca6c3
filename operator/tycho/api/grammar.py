"""The grammar of names and the bounds of a manifest, in one place: ``tycho validate``
explains a violation, the CRD and the admission policy carry the same patterns so the API
server refuses it too. No pydantic here: the CLI's quick commands check flags with it.
"""

from __future__ import annotations

import functools
import re

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
FILE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]{1,2})?$"
SHA256 = r"^(sha256:)?[0-9a-f]{64}$"
STAGE_NAME_MAX = 63
JOB_NAME_BUDGET = 63 - 12
"""Job names carry pipeline, stage and 10 hex digits of the cache key; they label pods (63 max)."""
# The bounds of a manifest, the same for a local run and the API server, which needs them
# to budget the CEL rules (the cost of checking every inputs[].from grows with stages x
# stages x inputs x outputs).
MAX_STAGES = 100
MAX_INPUTS = 16
MAX_OUTPUTS = 64
MAX_REF = 128
MAX_QUANTITY = 64
MAX_SWEPT = 32
"""Swept params of one sweep."""


@functools.cache
def regex(pattern: str) -> re.Pattern[str]:
    """A pattern the API server reads as RE2 (Go), compiled to mean the same in Python: ASCII
    classes (``\\w`` is [A-Za-z0-9_]) and ``$`` the end of the text, not a place before a final
    newline. Every pattern this package shares with the CRD or the admission policy is
    matched through this."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern), re.ASCII)
