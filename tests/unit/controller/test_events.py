"""Events: one per stage transition and per pipeline phase change, none when nothing changed."""

from __future__ import annotations

from tycho.api import models, status as xp
from tycho.controller import events


def _status(run: str, phase: str, **stages: str) -> xp.Status:
    return xp.Status(run_id=run, phase=phase,
                         stages=[xp.StageStatus(name=n, phase=p, job_name=f"job-{n}", cache_key="k" * 64,
                                                    provenance=f"rec-{n}", message="why") for n, p in stages.items()])


def test_stage_transitions_become_events() -> None:
    old = _status("r", "Running", a="Running", b="Pending", c="Pending")
    new = _status("r", "Running", a="Succeeded", b="Cached", c="Running")
    got = events.build(old, new)
    assert [(e.type, e.reason) for e in got] == [("Normal", "StageSucceeded"), ("Normal", "StageCached"),
                                                 ("Normal", "StageStarted")]
    assert "job-c" in got[2].message and "rec-b" in got[1].message


def test_nothing_changed_means_no_events() -> None:
    same = _status("r", "Running", a="Running")
    assert events.build(same, same) == []


def test_failure_is_a_warning_for_the_stage_and_the_pipeline() -> None:
    old = _status("r", "Running", a="Running")
    new = _status("r", "Failed", a="Failed")
    new.message = "stage a failed: why"
    got = events.build(old, new)
    assert [(e.type, e.reason) for e in got] == [("Warning", "StageFailed"), ("Warning", "PipelineFailed")]
    assert "stage a failed: why" in got[0].message


def test_a_retry_is_reported_when_attempts_grow() -> None:
    old = _status("r", "Running", a="Running")
    new = _status("r", "Running", a="Running")
    new.stages[0].attempts = 2
    (event,) = events.build(old, new)
    assert event.reason == "StageRetrying" and event.type == "Warning"


def test_a_new_run_announces_itself_and_its_stages_from_scratch() -> None:
    old = _status("r1", "Succeeded", a="Succeeded")
    new = _status("r2", "Running", a="Running")
    assert [e.reason for e in events.build(old, new)] == ["RunStarted", "StageStarted"]


def test_an_event_names_the_pipeline_it_is_about_and_keeps_a_long_message_within_bounds() -> None:
    ref = {"apiVersion": models.API_VERSION, "kind": models.KIND,
           "metadata": {"name": "digits", "namespace": "team-a", "uid": "u-1"}}
    long = "stage train failed: " + "x" * 3000 + " the end"
    body = events.manifest(ref, events.Event("Warning", "StageFailed", long), "2026-01-01T00:00:00+00:00", "op-0")
    assert body["metadata"] == {"namespace": "team-a", "generateName": "digits."}
    assert body["involvedObject"] == {"apiVersion": models.API_VERSION, "kind": models.KIND, "name": "digits",
                                      "namespace": "team-a", "uid": "u-1"}
    assert (body["type"], body["reason"], body["reportingInstance"]) == ("Warning", "StageFailed", "op-0")
    message = body["message"]
    assert len(message) <= events.MESSAGE_CHARS and message.startswith("stage train failed: ")
    assert message.endswith(" the end") and " ... " in message
    short = events.manifest(ref, events.Event("Normal", "RunStarted", "run r1"), "t", "op-0")
    assert short["message"] == "run r1"
