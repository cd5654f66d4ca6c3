"""Fixtures of the image tests: the operator and stage-cpu images, built with podman
(cached by input hash, see _images.py) or the tests skip with the reason."""

from __future__ import annotations

import pytest

from . import _images


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "images: builds and runs the container images (podman)")


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """target -> image ID of the freshly built (or up to date) operator and stage-cpu images."""
    why = _images.unavailable()
    if why:
        pytest.skip(why)
    return _images.ensure_built(("operator", "stage-cpu"))
