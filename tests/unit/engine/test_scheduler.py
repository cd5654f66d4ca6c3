"""The one scheduler, executor-agnostic: what it starts, cancels and reports for every
situation a run goes through (fresh, running, done, hit, failed, cancelled, suspended,
restarted driver, another run's executions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tycho.api import models, validation
from tycho.engine import model, scheduler
from tycho.planning import cachekey
from tycho.provenance import documents

TOY = Path(__file__).resolve().parents[2] / "fixtures" / "toy" / "toy.yaml"
NOTES = "s3://data/notes.txt"
RUN = "toy-run-1"
OUT = {"generate": "numbers", "total": "total", "report": "report"}


def toy(**spec: Any) -> models.ExperimentPipeline:
    doc = validation.load_text(TOY.read_text().replace("NOTES_URL", NOTES)).model_dump(by_alias=True,
                                                                                      exclude_none=True)
    doc["metadata"].update(uid="uid-1", generation=1)
    doc["spec"].update(spec)
    return validation.check(doc)


def ctx(pipeline: models.ExperimentPipeline | None = None, run_id: str = RUN, force: bool = False) -> model.Context:
    pipeline = pipeline or toy()
    images = {s.name: documents.ImageRef(reference=s.image) for s in pipeline.spec.stages}
    return model.Context(pipeline=pipeline, run_id=run_id, store="s3://b/p", code=documents.CodeRef(digest="c" * 64),
                         workdir="/app", images=images,
                         image_parts={n: cachekey.image_part(reference=i.reference) for n, i in images.items()},
                         external={NOTES: "a" * 64}, executor="test", force=force)


class World:
    """A driver in miniature: applies each step to fake executions and a fake cache."""

    def __init__(self, context: model.Context | None = None) -> None:
        self.ctx = context or ctx()
        self.stages: dict[str, documents.StageResult] = {}
        self.executions: dict[str, model.Execution] = {}
        self.cache: dict[str, documents.CacheEntry] = {}
        self.lookups: list[str] = []
        self.cancelled: list[str] = []

    def lookup(self, key: str) -> documents.CacheEntry | None:
        self.lookups.append(key)
        return self.cache.get(key)

    def step(self, cancel: bool = False) -> model.Plan:
        plan = scheduler.step(self.ctx, model.Observed(stages=self.stages, executions=self.executions,
                                                       lookup=self.lookup, now="t", cancel=cancel))
        for start in plan.start:
            inv = start.invocation
            self.executions[start.execution] = model.Execution(
                id=start.execution, stage=inv.stage, cache_key=inv.cache_key, run_id=inv.run_id, phase="Running")
        self.cancelled += plan.cancel
        self.stages = plan.stages
        return plan

    def finish(self, stage: str, phase: str = "Succeeded", **kw: Any) -> model.Execution:
        ex = next(e for e in self.executions.values() if e.stage == stage)
        result = documents.CacheEntry(key=ex.cache_key, record=f"records/{ex.run_id}/{stage}.json",
                                      outputs={OUT[stage]: stage[0] * 64},
                                      metrics={"m": 1.0}) if phase == "Succeeded" else None
        self.executions[ex.id] = ex.model_copy(update={"phase": phase, "result": result, **kw})
        return self.executions[ex.id]

    def hit(self, stage: str) -> None:
        """Make ``stage``'s current key a verified cache entry."""
        key = self.stages[stage].cache_key
        assert key
        self.cache[key] = documents.CacheEntry(key=key, record=f"records/old/{stage}.json",
                                               outputs={OUT[stage]: stage[0] * 64})


def phases(plan: model.Plan) -> dict[str, str]:
    return {n: s.phase for n, s in plan.stages.items()}


def test_a_fresh_run_starts_the_first_stage_only_and_the_rest_wait_for_it() -> None:
    w = World()
    plan = w.step()
    assert [s.stage.name for s in plan.start] == ["generate"]
    assert plan.start[0].execution == scheduler.execution_id("toy", "generate", plan.stages["generate"].cache_key or "")
    assert phases(plan) == {"generate": "Running", "total": "Pending", "report": "Pending"}
    assert plan.stages["total"].message == "waits for generate" and plan.phase == "Running"


def test_stepping_again_while_it_runs_starts_nothing_and_changes_nothing() -> None:
    w = World()
    first = w.step()
    again = w.step()
    assert again.start == [] and again.cancel == [] and again.stages == first.stages


def test_a_driver_that_lost_its_results_adopts_the_running_execution() -> None:
    w = World()
    w.step()
    w.stages = {}  # restarted: only the executor remembers
    plan = w.step()
    assert plan.start == [] and plan.stages["generate"].phase == "Running"


def test_a_finished_execution_feeds_the_next_stage_with_its_outputs_and_record() -> None:
    w = World()
    w.step()
    w.finish("generate")
    plan = w.step()
    gen = plan.stages["generate"]
    assert gen.phase == "Succeeded" and gen.cache_hit is False and gen.outputs == {"numbers": "g" * 64}
    (start,) = plan.start
    inv = start.invocation
    assert inv.stage == "total" and inv.inputs[0].sha256 == "g" * 64 and inv.inputs[0].producer == gen.record
    assert inv.inputs[0].url is None and inv.code.digest == "c" * 64 and inv.workdir == "/app"


def test_cache_hits_start_nothing_and_feed_downstream_in_the_same_step() -> None:
    w = World()
    w.step()
    w.hit("generate")
    fresh = World()
    fresh.cache = w.cache
    plan = fresh.step()
    assert plan.stages["generate"].phase == "Cached" and plan.stages["generate"].cache_hit is True
    assert plan.stages["generate"].record == "records/old/generate.json"
    assert [s.stage.name for s in plan.start] == ["total"]


def test_all_hits_finish_the_run_without_any_execution() -> None:
    w = World()
    for stage in ("generate", "total", "report"):
        w.step()
        w.hit(stage)
        w.executions.clear()
        w.stages = {}
    fresh = World(w.ctx)
    fresh.cache = w.cache
    plan = fresh.step()
    assert plan.start == [] and plan.phase == "Succeeded" and set(phases(plan).values()) == {"Cached"}


def test_a_failure_stops_new_starts_and_skips_what_never_ran() -> None:
    w = World()
    w.step()
    w.finish("generate", "Failed", message="exit code 3")
    plan = w.step()
    assert phases(plan) == {"generate": "Failed", "total": "Skipped", "report": "Skipped"}
    assert plan.stages["generate"].message == "exit code 3" and plan.phase == "Failed" and plan.start == []


def test_an_execution_that_succeeded_without_recording_anything_fails_and_says_so() -> None:
    w = World()
    w.step()
    ex = next(iter(w.executions.values()))
    w.executions[ex.id] = ex.model_copy(update={"phase": "Succeeded", "result": None})
    gen = w.step().stages["generate"]
    assert gen.phase == "Failed" and "recorded nothing" in gen.message and "tycho stage-exec" in gen.message


def test_retries_show_as_attempts() -> None:
    w = World()
    w.step()
    ex = next(iter(w.executions.values()))
    w.executions[ex.id] = ex.model_copy(update={"attempts": 2})
    assert w.step().stages["generate"].attempts == 2


def test_cancel_stops_what_runs_then_records_cancelled_with_what_completed() -> None:
    w = World(ctx(toy(maxParallel=2)))
    w.step()
    w.finish("generate")
    w.step()  # total starts
    plan = w.step(cancel=True)
    total_id = w.stages["total"].execution
    assert total_id is not None
    assert plan.cancel == [total_id] and plan.phase == "Running" and plan.stages["total"].message == "stopping"
    w.executions[total_id] = w.executions[total_id].model_copy(update={"phase": "Cancelled"})
    plan = w.step(cancel=True)
    assert phases(plan) == {"generate": "Succeeded", "total": "Cancelled", "report": "Skipped"}
    assert plan.phase == "Cancelled" and plan.start == []


def test_suspend_stops_running_executions_starts_nothing_and_resume_starts_the_same_one() -> None:
    w = World()
    w.step()
    running_id = next(iter(w.executions))
    w.ctx = ctx(toy(suspend=True))
    plan = w.step()
    assert plan.cancel == [running_id] and plan.start == []
    del w.executions[running_id]  # it stopped
    plan = w.step()
    assert plan.stages["generate"].phase == "Suspended" and plan.start == []
    w.ctx = ctx(toy())
    plan = w.step()
    assert [s.execution for s in plan.start] == [running_id]


def test_finished_stages_stay_finished_without_their_executions() -> None:
    w = World()
    w.step()
    w.finish("generate")
    w.step()
    w.executions = {k: v for k, v in w.executions.items() if v.stage != "generate"}  # e.g. a Job's TTL
    plan = w.step()
    assert plan.stages["generate"].phase == "Succeeded" and plan.start == []


def test_max_parallel_limits_how_many_run_at_once() -> None:
    doc = toy(maxParallel=2).model_dump(by_alias=True, exclude_none=True)
    base = doc["spec"]["stages"][0]
    doc["spec"]["stages"] = [dict(base, name=f"s{i}") for i in range(4)]
    w = World(ctx(validation.check(doc)))
    plan = w.step()
    assert len(plan.start) == 2
    waiting = [s for s in plan.stages.values() if s.phase == "Pending"]
    assert len(waiting) == 2 and "maxParallel=2" in waiting[0].message
    assert len(w.lookups) == 2  # no cache question for stages that cannot start anyway


def test_another_runs_failure_is_removed_and_retried() -> None:
    old = World(ctx(run_id="old"))
    old.step()
    old.finish("generate", "Failed")
    w = World()
    w.executions = dict(old.executions)
    plan = w.step()
    assert plan.cancel == list(old.executions) and plan.start == [] and plan.waiting_for_deletion


def test_another_runs_execution_of_the_same_key_is_adopted_and_counts_as_a_hit() -> None:
    old = World(ctx(run_id="old"))
    old.step()
    w = World()
    w.executions = dict(old.executions)
    assert w.step().start == []
    old.executions = w.executions
    old.finish("generate")
    w.executions = old.executions
    gen = w.step().stages["generate"]
    assert gen.phase == "Cached" and gen.cache_hit is True


def test_an_execution_this_run_no_longer_needs_is_cancelled() -> None:
    old = World()
    old.step()
    w = World(ctx(toy(stages=[dict(s, params={**s.get("params", {}), "count": 6}) if s["name"] == "generate" else s
                              for s in toy().model_dump(by_alias=True, exclude_none=True)["spec"]["stages"]])))
    w.executions = dict(old.executions)
    plan = w.step()
    assert plan.cancel == list(old.executions)
    assert len(plan.start) == 1 and plan.start[0].execution not in old.executions


def test_an_execution_being_removed_blocks_its_name_until_it_is_gone() -> None:
    w = World()
    w.step()
    ex = next(iter(w.executions.values()))
    w.executions = {ex.id: ex.model_copy(update={"deleting": True, "run_id": "old", "phase": "Failed"})}
    w.stages = {}
    plan = w.step()
    assert plan.start == [] and plan.waiting_for_deletion


def test_reproduce_ignores_the_cache_and_adopts_nothing() -> None:
    w = World()
    w.step()
    w.hit("generate")
    other = dict(w.executions)
    forced = World(ctx(run_id="repro", force=True))
    forced.cache, forced.executions = w.cache, {}
    plan = forced.step()
    assert [s.stage.name for s in plan.start] == ["generate"] and forced.lookups == []
    assert plan.stages["generate"].message == "cache ignored (reproduce)"
    assert other  # the original run's execution is not this run's


def test_the_cluster_run_id_is_the_same_for_the_same_object_generation_and_spec() -> None:
    meta = toy().metadata
    digest = scheduler.spec_digest(toy().spec)
    assert scheduler.cluster_run_id(meta, digest) == scheduler.cluster_run_id(meta, digest)
    assert scheduler.cluster_run_id(meta, digest) != scheduler.cluster_run_id(
        meta.model_copy(update={"generation": 2}), digest)
    assert scheduler.spec_digest(toy(suspend=True).spec) == digest


def test_a_stage_with_its_cache_disabled_runs_without_asking_the_cache() -> None:
    doc = toy().model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["stages"][0]["cache"] = {"enabled": False}
    w = World(ctx(validation.check(doc)))
    plan = w.step()
    assert [s.stage.name for s in plan.start] == ["generate"] and w.lookups == []
    assert plan.stages["generate"].message == "cache disabled for this stage"
