"""``ws``: a throwaway workspace with the toy pipeline and a local store (tests/support/workspace.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)
