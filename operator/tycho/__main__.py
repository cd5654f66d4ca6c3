"""``python -m tycho``: the same as the ``tycho`` command (executors start stages this way)."""

import sys

from tycho.cli import main

sys.exit(main())
