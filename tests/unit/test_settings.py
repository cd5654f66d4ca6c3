"""Operator settings from the environment: typed, checked, every bad value named."""

from __future__ import annotations

import pytest

from tycho.api import problems
from tycho.settings import Settings


def test_settings_read_lists_and_booleans_from_the_environment() -> None:
    got = Settings.from_env({"TYCHO_ALLOWED_REGISTRIES": "a/, b/", "TYCHO_REQUIRE_DIGESTS": "true"})
    assert got.allowed_registries == ("a/", "b/") and got.require_digests is True


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("TYCHO_METRICS_PORT", "abc", "valid integer"),
    ("TYCHO_HEALTH_PORT", "70000", "less than or equal to 65535"),
    ("TYCHO_REQUIRE_DIGESTS", "maybe", "valid boolean"),
    ("TYCHO_JOB_TTL_SECONDS", "-1", "greater than or equal to 0"),
    ("TYCHO_STAGE_IMAGE_PULL_POLICY", "Sometimes", "'Always', 'IfNotPresent' or 'Never'"),
])
def test_a_setting_that_cannot_be_read_names_its_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(problems.InvalidInput) as caught:
        Settings.from_env({variable: value})
    (problem,) = caught.value.problems
    assert problem.path == variable and says in problem.message and repr(value) in problem.message


@pytest.mark.parametrize("value", ["on", "ON", "yes", "1", "true"])
def test_every_common_spelling_of_true_is_true(value: str) -> None:
    assert Settings.from_env({"TYCHO_REQUIRE_DIGESTS": value}).require_digests is True


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(problems.InvalidInput) as caught:
        Settings.from_env({"TYCHO_METRICS_PORT": "x", "TYCHO_HEALTH_PORT": "0"})
    assert {p.path for p in caught.value.problems} == {"TYCHO_METRICS_PORT", "TYCHO_HEALTH_PORT"}
