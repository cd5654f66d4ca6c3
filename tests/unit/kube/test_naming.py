"""Deterministic names and valid label values."""

from __future__ import annotations

from tycho.engine import scheduler
from tycho.kube import naming


def test_long_run_ids_become_valid_label_values_keeping_their_unique_tail() -> None:
    run = "p" * 49 + "-20250101-000000-abcd"
    value = naming.label_value(run)
    assert len(value) <= 63 and value.endswith("20250101-000000-abcd") and value[0].isalnum()


def test_job_names_are_execution_ids_and_deterministic() -> None:
    assert scheduler.execution_id("toy", "total", "abcdef0123456789") == "toy-total-abcdef0123"
    assert scheduler.execution_id("toy", "total", "abcdef0123456789") == scheduler.execution_id(
        "toy", "total", "abcdef0123456789ffff")


def test_ownership_is_by_uid() -> None:
    job = {"metadata": {"ownerReferences": [naming.owner_reference("toy", "u1")]}}
    assert naming.owned_by(job, "u1") and not naming.owned_by(job, "u2")
