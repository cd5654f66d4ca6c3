"""Pipeline status: phase, progress, headline and conditions derived from stage statuses."""

from __future__ import annotations

from tycho.api import problems, status as xp
from tycho.controller import status


def _stages(*phases: str, metrics: dict[str, float] | None = None) -> list[xp.StageStatus]:
    return [xp.StageStatus(name=f"s{i}", phase=p, metrics=metrics or {}) for i, p in enumerate(phases)]


def _cond(st: xp.Status, kind: str) -> xp.Condition:
    return next(c for c in st.conditions if c.type == kind)


def test_progress_counts_finished_stages_including_cache_hits() -> None:
    assert status.progress(_stages("Succeeded", "Cached", "Running", "Pending")) == "2/4"


def test_headline_prefers_accuracy_like_metrics_then_the_latest_stage() -> None:
    stages = _stages("Succeeded", "Succeeded", "Succeeded")
    stages[0].metrics = {"val_accuracy": 0.9}
    stages[1].metrics = {"baseline_test_accuracy": 0.9, "test_accuracy": 0.97312, "test_loss": 0.1}
    stages[2].metrics = {"gate_value": 0.97}
    assert status.headline(stages) == "test_accuracy=0.9731"
    stages[1].metrics = {"loss": 1.0}
    assert status.headline(stages) == "val_accuracy=0.9"
    stages[0].metrics = {"a": 1.0, "b": 2.0}
    assert status.headline(stages) == "gate_value=0.97"
    assert status.headline(_stages("Running")) == ""


def test_phase_follows_the_stages() -> None:
    assert status.phase(_stages("Succeeded", "Cached"), False) == "Succeeded"
    assert status.phase(_stages("Failed", "Skipped"), False) == "Failed"
    assert status.phase(_stages("Failed", "Running"), False) == "Running"  # still finishing what runs
    assert status.phase(_stages("Succeeded", "Pending"), True) == "Suspended"
    assert status.phase(_stages("Pending", "Pending"), False) == "Pending"


def test_conditions_keep_their_transition_time_until_their_status_flips() -> None:
    first = status.build(xp.Status(), stages=_stages("Running"), spec_digest="d", run_id="r", generation=1,
                         suspended=False, now="t1")
    assert _cond(first, "Progressing").status == "True" and _cond(first, "Progressing").last_transition_time == "t1"
    assert _cond(first, "Ready").status == "False" and _cond(first, "Valid").status == "True"
    second = status.build(first, stages=_stages("Running"), spec_digest="d", run_id="r", generation=1,
                          suspended=False, now="t2")
    assert _cond(second, "Progressing").last_transition_time == "t1"
    done = status.build(second, stages=_stages("Succeeded"), spec_digest="d", run_id="r", generation=1,
                        suspended=False, now="t3")
    assert _cond(done, "Ready").status == "True" and _cond(done, "Ready").last_transition_time == "t3"
    assert _cond(done, "Progressing").status == "False" and _cond(done, "Progressing").last_transition_time == "t3"
    assert _cond(done, "Valid").last_transition_time == "t1"
    assert [c.type for c in done.conditions] == ["Ready", "Progressing", "Degraded", "Valid"]
    assert done.observed_generation == 1 and all(c.observed_generation == 1 for c in done.conditions)


def test_invalid_status_lists_every_problem_with_its_field_path() -> None:
    found = [problems.Problem("spec.stages[1].inputs[0].from", "unknown stage 'nope'", "use one of: a"),
             problems.Problem("spec.stages[0].image", "image is empty", "set a container image")]
    st = status.invalid(xp.Status(), found, 3, "t")
    assert st.phase == "Invalid" and st.observed_generation == 3
    valid = _cond(st, "Valid")
    assert valid.status == "False" and valid.reason == "InvalidManifest"
    assert "spec.stages[1].inputs[0].from: unknown stage 'nope'" in valid.message
    assert "spec.stages[0].image" in st.message


def test_unreadable_status_counts_as_none() -> None:
    assert status.parse({"phase": "Bogus"}) == xp.Status()
    assert status.parse(None) == xp.Status()


def test_dump_is_camel_case_without_nulls() -> None:
    st = status.build(xp.Status(), stages=_stages("Running"), spec_digest="d", run_id="r", generation=2,
                      suspended=False, now="t")
    doc = status.dump(st)
    assert doc["runId"] == "r" and doc["observedGeneration"] == 2
    assert "lastTransitionTime" in doc["conditions"][0]
    assert "startedAt" not in doc["stages"][0]
