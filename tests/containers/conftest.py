"""Fixtures of the container executor's tests: the stage-cpu image, built with podman
(cached by input hash, tests/images/_images.py), or the tests skip with the reason."""

from __future__ import annotations

import subprocess

import pytest

from ..images import _images


@pytest.fixture(scope="session")
def stage_image() -> str:
    """The stage-cpu image's manifest digest (sha256:HEX), freshly built or up to date."""
    why = _images.unavailable()
    if why:
        pytest.skip(why)
    _images.ensure_built(("stage-cpu",))
    return subprocess.run(["podman", "image", "inspect", "--format", "{{.Digest}}", _images.ref("stage-cpu")],
                          capture_output=True, text=True, check=True).stdout.strip()
