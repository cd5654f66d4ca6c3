"""A stage that fails: Kubernetes retries it as new pods (Job backoffLimit = retries.limit),
then the pipeline fails with a message naming the stage and the reason."""

from __future__ import annotations

import pytest

from tests.cluster.space import Space
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


def test_a_failing_stage_is_retried_then_fails_the_pipeline_naming_stage_and_reason(space: Space) -> None:
    marker = space.tmp / "fail-marker"
    marker.write_text("5")  # total.py fails while the marker counts down from 5
    doc = space.toy()
    total = doc["spec"]["stages"][1]
    total["params"]["fail_marker"] = str(marker)
    total["retries"] = {"limit": 1, "backoffSeconds": 0}
    space.apply(doc)
    assert space.execute(space.wait_job("generate")).returncode == 0
    job = space.wait_job("total")
    assert job["spec"]["backoffLimit"] == 1
    first = space.execute(job, attempt=1)
    assert first.returncode != 0 and "failing on purpose" in first.stdout
    wait_for(lambda: space.stage("total").get("attempts") == 2, 60, "the retry (a second pod)")
    assert space.stage("total")["phase"] == "Running"
    second = space.execute(job, attempt=2)
    assert second.returncode != 0
    status = space.wait_phase("Failed", timeout=60)
    stages = {s["name"]: s for s in status["stages"]}
    assert stages["total"]["phase"] == "Failed" and stages["total"]["attempts"] == 2
    assert stages["report"]["phase"] == "Skipped"
    assert status["message"].startswith("stage total failed: BackoffLimitExceeded")
    assert "exit code 1" in status["message"] and "failing on purpose" in status["message"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Degraded"]["status"] == "True" and "stage total failed" in conds["Degraded"]["message"]
    assert len(space.jobs("total")) == 1  # retries are pods of the same Job
    space.wait_events("StageRetrying", "StageFailed", "PipelineFailed")
    assert "tycho_stage_failures_total 1.0" in space.operator.metrics()
