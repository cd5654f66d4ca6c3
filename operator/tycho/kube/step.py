"""One reconcile step of a pipeline run, as a pure function: what to create, what to
delete, and what the status says now.

The controller (``tycho.kube.controller``) gathers the world (the pipeline, its Jobs, the
run's external digests) and answers store questions through a ``Probe``; this module
decides. It mirrors the local runner (``tycho.runners.local``): the same
``tycho.planning.plan.decide`` per stage in DAG order, at most ``spec.maxParallel`` stages
at once, no new stage after a failure, pending stages skipped once nothing runs. The
difference is that state comes from the API server (status, deterministic Job names), so
calling ``step`` again after a crash gives the same answer and never a second Job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from tycho.api import models
from tycho.kube import jobs, naming, observe, status as status_mod
from tycho.planning import cachekey, dag, plan
from tycho.provenance import store as store_mod
from tycho.settings import Settings


class Probe(Protocol):
    """The store and pod questions a step may ask (answered lazily: most steps ask none)."""

    def lookup(self, key: str) -> plan.CacheEntry | None:
        """A verified cache entry (outputs exist and hash right), for a stage about to run."""

    def produced(self, key: str) -> plan.CacheEntry | None:
        """The cache entry a just-succeeded Job wrote (``cache/<key>.json``)."""

    def pods(self, job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The pods of a finished Job (failure reason, image digest)."""


@dataclasses.dataclass(frozen=True)
class World:
    pipeline: models.ExperimentPipeline
    prior: models.Status
    run_id: str
    store: str
    external: Mapping[str, str]
    jobs: Mapping[str, Mapping[str, Any]]
    settings: Settings
    now: str


@dataclasses.dataclass
class Outcome:
    status: models.Status
    create: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    delete: list[str] = dataclasses.field(default_factory=list)
    components: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    images: dict[str, str] = dataclasses.field(default_factory=dict)
    waiting_for_deletion: bool = False


def _outputs(store: str, digests: Mapping[str, str]) -> list[models.OutputStatus]:
    return [models.OutputStatus(name=n, sha256=d, uri=f"{store}/{store_mod.Store.object_rel(d)}")
            for n, d in sorted(digests.items())]


def _from_entry(base: models.StageStatus, entry: plan.CacheEntry, store: str, **kw: Any) -> models.StageStatus:
    return base.model_copy(update={"outputs": _outputs(store, entry.outputs), "provenance": entry.record,
                                   "metrics": {k: float(v) for k, v in entry.metrics.items()}, **kw})


def _failed_already(world: World) -> bool:
    """A failure in this run stops new stages (the local runner's rule)."""
    if any(s.phase == "Failed" for s in world.prior.stages):
        return True
    return any(observe.run_of(j) == world.run_id and not observe.is_deleting(j)
               and observe.job_state(j).phase == "Failed" for j in world.jobs.values())


def _follow(world: World, probe: Probe, out: Outcome, st: models.StageStatus, base: models.StageStatus,
            job: Mapping[str, Any]) -> tuple[models.StageStatus, plan.CacheEntry | None]:
    """The status of a stage whose Job exists, and its outputs once the Job succeeded.

    A Job of another run (same key: the spec changed elsewhere) is adopted while it runs
    and counts as a cache hit when done; if it failed, it is deleted so this run retries.
    """
    jname, key = job["metadata"]["name"], base.cache_key or ""
    state = observe.job_state(job)
    same_run = observe.run_of(job) == world.run_id
    base = base.model_copy(update={"job_name": jname, "attempts": state.attempts, "cache_hit": not same_run,
                                   "started_at": st.started_at or state.started})
    if state.phase == "Running" and world.pipeline.spec.suspend:
        out.delete.append(jname)
        return base.model_copy(update={"phase": "Suspended", "message": "Job deleted: pipeline suspended"}), None
    if state.phase == "Running":
        kept = st.message if st.phase == "Running" and st.job_name == jname else ""
        return base.model_copy(update={"phase": "Running", "message": kept or f"Job {jname}"}), None
    if state.phase == "Failed" and not same_run:
        out.delete.append(jname)
        out.waiting_for_deletion = True
        return base.model_copy(update={"message": "replacing the failed Job of an earlier run"}), None
    if state.phase == "Failed":
        message = observe.failure_message(state, probe.pods(job))
        return base.model_copy(update={"phase": "Failed", "finished_at": state.finished, "message": message}), None
    entry = probe.produced(key)
    if entry is None:
        return base.model_copy(update={
            "phase": "Failed", "finished_at": state.finished,
            "message": f"Job {jname} succeeded but {world.store}/cache/{key}.json does not exist: "
                       "the stage image must run `tycho stage-exec` against the same store"}), None
    image = observe.image_digest(probe.pods(job))
    if image:
        out.images[base.name] = image
    done = _from_entry(base, entry, world.store, phase="Succeeded" if same_run else "Cached",
                       finished_at=state.finished, message="")
    return done, entry


def step(world: World, probe: Probe) -> Outcome:
    """Decide every stage in DAG order; see the module docstring."""
    spec, meta = world.pipeline.spec, world.pipeline.metadata
    by_name = {s.name: s for s in spec.stages}
    deps = dag.edges(spec)
    prior = {s.name: s for s in world.prior.stages}
    out = Outcome(status=world.prior)
    outputs: dict[str, dict[str, str]] = {}
    producers: dict[str, str] = {}
    new: dict[str, models.StageStatus] = {}
    claimed: set[str] = set()
    live = [j for j in world.jobs.values() if not observe.is_deleting(j) and observe.job_state(j).phase == "Running"]
    slots = spec.max_parallel - len(live)
    stop = _failed_already(world)
    for name in dag.order(deps):
        stage = by_name[name]
        st = prior.get(name) or models.StageStatus(name=name)
        digests = plan.input_digests(stage, outputs, world.external)
        if digests is None:
            upstream = {i.from_.split("/")[0] for i in stage.inputs if i.from_}
            waits = sorted(u for u in upstream if u not in outputs)
            new[name] = models.StageStatus(name=name, message="waits for " + ", ".join(waits))
            continue
        code_digest, _ = jobs.code_identity(spec, stage)
        parts = cachekey.components(stage, stage.image, code_digest, digests)
        key = cachekey.key(parts)
        out.components[name] = parts
        if st.phase in status_mod.DONE and st.cache_key == key:
            outputs[name] = {o.name: o.sha256 for o in st.outputs}
            producers[name] = st.provenance or ""
            new[name] = st
            continue
        if st.phase == "Failed":
            new[name] = st
            continue
        jname = naming.job_name(meta.name, name, key)
        base = models.StageStatus(name=name, cache_key=key, attempts=st.attempts, started_at=st.started_at)
        job = world.jobs.get(jname)
        if job is not None and observe.is_deleting(job):
            job, blocked = None, True
        else:
            blocked = False
        if job is not None:
            claimed.add(jname)
            new[name], entry = _follow(world, probe, out, st, base, job)
            if entry is not None:
                outputs[name], producers[name] = dict(entry.outputs), entry.record
            continue
        if spec.suspend:
            phase = "Suspended" if st.phase in ("Running", "Suspended") else "Pending"
            new[name] = base.model_copy(update={"phase": phase, "message": "pipeline suspended"})
            continue
        if stop:
            new[name] = base.model_copy(update={"message": "not started: a stage of this run failed"})
            continue
        if slots <= 0:
            new[name] = base.model_copy(update={"message": f"waits for a free slot (maxParallel={spec.max_parallel})"})
            continue
        decision = plan.decide(stage, image=stage.image, code_digest=code_digest, outputs=outputs,
                               external=world.external, lookup=probe.lookup)
        if decision.action == "hit" and decision.cached is not None:
            outputs[name], producers[name] = dict(decision.cached.outputs), decision.cached.record
            new[name] = _from_entry(base, decision.cached, world.store, phase="Cached", cache_hit=True,
                                    started_at=st.started_at or world.now, finished_at=world.now,
                                    message=decision.reason)
            continue
        if blocked:
            out.waiting_for_deletion = True
            new[name] = base.model_copy(update={"message": f"waits until the previous Job {jname} is deleted"})
            continue
        inv = jobs.build_invocation(pipeline=world.pipeline, stage=stage, run_id=world.run_id, store=world.store,
                                    key=key, input_digests=digests, producers=producers, job=jname)
        out.create.append(jobs.build_job(pipeline=world.pipeline, stage=stage, run_id=world.run_id, key=key,
                                         inv=inv, settings=world.settings))
        claimed.add(jname)
        slots -= 1
        new[name] = base.model_copy(update={"phase": "Running", "job_name": jname, "attempts": 1, "cache_hit": False,
                                            "started_at": world.now, "message": decision.reason})
    for jname, job in world.jobs.items():
        if jname not in claimed and jname not in out.delete and not observe.is_deleting(job) \
                and observe.job_state(job).phase == "Running":
            out.delete.append(jname)  # a Job of an earlier run or key that this run no longer needs
    stages = [new[n] for n in dag.order(deps)]
    if any(s.phase == "Failed" for s in stages) and not any(s.phase == "Running" for s in stages):
        stages = [s.model_copy(update={"phase": "Skipped", "message": "not run: a stage of this run failed"})
                  if s.phase in ("Pending", "Suspended") else s for s in stages]
    out.status = status_mod.build(world.prior, stages=stages, run_id=world.run_id, generation=meta.generation,
                                  suspended=spec.suspend, now=world.now)
    return out
