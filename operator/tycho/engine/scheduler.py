"""The one scheduler: plan, decide hit or miss, start what is ready, follow what runs.

``step`` is a pure function of the run's context and what is observed now (stage results
so far, the executions an executor reports, a cache lookup) to the stage results and
the actions to take. It is level-triggered: calling it again with the same observations
gives the same answer, so a driver may call it after every event, after a crash, or in
a loop. The local runner (``tycho.runners.local``) and the operator's reconcile
(``tycho.controller.reconciler``) are two drivers of this one function; executors differ
only in how they start, observe and cancel an execution.

Rules, per stage in DAG order:
- its inputs are known once every upstream stage is done; its cache key is computed
  then, once per step, from ``tycho.planning.cachekey``;
- done with the same key, or failed or cancelled in this run: it stays so;
- an execution of its key exists: follow it (another run's execution is adopted and
  counts as a cache hit; another run's failure is removed and retried);
- otherwise, unless the run is cancelled, suspended or a stage failed: a verified cache
  entry is a hit, else it starts when a slot is free (``spec.maxParallel``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tycho.api import dag, models, phases
from tycho.engine import model, sweep
from tycho.planning import cachekey
from tycho.provenance import documents
from tycho.stage import invocation

EXECUTION_KEY_CHARS = 10


def execution_id(pipeline: str, stage: str, key: str) -> str:
    """``<pipeline>-<stage>-<key[:10]>``: the Job name on a cluster (validation keeps it
    within 63 characters), and the same name for local executions."""
    return f"{pipeline}-{stage}-{key[:EXECUTION_KEY_CHARS]}"


def input_digests(stage: models.Stage, outputs: Mapping[str, Mapping[str, str]],
                  external: Mapping[str, str]) -> dict[str, str] | None:
    """sha256 of each input, or None while an upstream output is not known yet."""
    found: dict[str, str] = {}
    for inp in stage.inputs:
        if inp.from_:
            ref_stage, _, ref_out = inp.from_.partition("/")
            digest = outputs.get(ref_stage, {}).get(ref_out)
        else:
            digest = external.get(inp.url or "")
        if digest is None:
            return None
        found[inp.name] = digest
    return found


def _waits_for(stage: models.Stage, outputs: Mapping[str, object]) -> str:
    upstream = sorted({i.from_.split("/")[0] for i in stage.inputs if i.from_} - set(outputs))
    return "waits for " + ", ".join(upstream)


def run_phase(stages: Mapping[str, documents.StageResult], cancel: bool) -> phases.RunPhase:
    seen = {s.phase for s in stages.values()}
    if "Running" in seen:
        return "Running"
    if seen <= set(phases.DONE):
        return "Succeeded"
    if "Failed" in seen:
        return "Failed"
    if cancel or "Cancelled" in seen:
        return "Cancelled"
    return "Running"


class Pass:
    """One pass over the stages; the state of the pass in one place."""

    def __init__(self, ctx: model.Context, obs: model.Observed) -> None:
        self.ctx, self.obs = ctx, obs
        self.spec = ctx.pipeline.spec
        self.by_name = {s.name: s for s in self.spec.stages}
        self.deps = dag.edges(self.spec)
        self.outputs: dict[str, dict[str, str]] = {}
        self.producers: dict[str, str] = {}
        self.plan = model.Plan(stages={}, phase="Running")
        self.claimed: set[str] = set()
        mine = [e for e in obs.executions.values() if e.run_id == ctx.run_id and not e.deleting and e.trial is None]
        self.slots = self.spec.max_parallel - sum(e.phase == "Running" for e in obs.executions.values()
                                                  if not e.deleting)
        self.failed = (any(s.phase == "Failed" for s in obs.stages.values())
                       or any(e.phase == "Failed" for e in mine))

    # ---- the pass -------------------------------------------------------------------------
    def run(self) -> model.Plan:
        for name in dag.order(self.deps):
            result = self.stage(self.by_name[name], self.obs.stages.get(name) or documents.StageResult(name=name))
            self.plan.stages[name] = result
            if result.phase in phases.DONE:
                self.outputs[name] = dict(result.outputs)
                self.producers[name] = result.record or ""
        for ex in self.obs.executions.values():
            if (ex.id not in self.claimed and ex.phase == "Running" and not ex.deleting
                    and ex.id not in self.plan.cancel):
                self.plan.cancel.append(ex.id)  # an execution this run no longer needs
        self._settle()
        return self.plan

    def stage(self, stage: models.Stage, prior: documents.StageResult) -> documents.StageResult:
        digests = input_digests(stage, self.outputs, self.ctx.external)
        if digests is None:
            if prior.phase in ("Skipped", "Cancelled"):
                return prior
            return documents.StageResult(name=stage.name, message=_waits_for(stage, self.outputs))
        parts = cachekey.components(stage, self.ctx.image_parts[stage.name], self.ctx.code.digest, digests)
        key = cachekey.key(parts)
        if prior.cache_key == key and prior.phase in (*phases.DONE, "Failed", "Cancelled"):
            return prior.model_copy(update={"key_components": parts})
        if stage.sweep is not None:
            return sweep.step(self, stage, prior, digests, key, parts)
        result, _ = self.unit(stage, key, parts, digests, prior)
        return result

    def unit(self, stage: models.Stage, key: str, parts: dict[str, Any], digests: dict[str, str],
             prior: documents.StageResult, *, trial: int | None = None, objective: str | None = None,
             rule: invocation.StopRule | None = None, room: bool = True,
             ) -> tuple[documents.StageResult, documents.CacheEntry | None]:
        """One execution unit — a stage, or a trial of a sweep — whose inputs are known:
        follow its execution, use a verified cache entry, or start it. Returns its result
        and the cache entry (hit or produced) its outputs came from. ``room``: the sweep
        has room for one more running trial."""
        base = documents.StageResult(name=stage.name, cache_key=key, key_components=parts, attempts=prior.attempts,
                                     started_at=prior.started_at, image=self.ctx.images.get(stage.name))
        exec_id = execution_id(self.ctx.pipeline.metadata.name, stage.name, key)
        execution = self.obs.executions.get(exec_id)
        if execution is not None and not (self.ctx.force and execution.run_id != self.ctx.run_id):
            self.claimed.add(exec_id)
            if not execution.deleting:
                return self.follow(base, execution, prior), execution.result
            if execution.phase == "Running":
                return base.model_copy(update={"phase": "Running", "execution": exec_id, "message": "stopping"}), None
        if self.obs.cancel:
            return base.model_copy(update={"phase": "Skipped", "message": "not started: the run was cancelled"}), None
        if self.spec.suspend:
            phase: phases.StagePhase = "Suspended" if prior.phase in ("Running", "Suspended") else "Pending"
            return base.model_copy(update={"phase": phase, "message": "pipeline suspended"}), None
        if self.failed:
            return base.model_copy(update={"message": "not started: a stage of this run failed"}), None
        if self.slots <= 0 or not room:
            limit = f"maxParallel={self.spec.max_parallel}" if self.slots <= 0 else "the sweep's parallelism"
            return base.model_copy(update={"message": f"waits for a free slot ({limit})"}), None
        reason = self._cache_reason(stage)
        if reason is None:
            entry = self.obs.lookup(key)
            if entry is not None:
                return base.model_copy(update={
                    "phase": "Cached", "cache_hit": True, "outputs": dict(entry.outputs), "record": entry.record,
                    "metrics": dict(entry.metrics), "checks": list(entry.checks),
                    "started_at": prior.started_at or self.obs.now,
                    "finished_at": self.obs.now, "message": "outputs recorded and verified"}), entry
            reason = "no verified outputs recorded for this key"
        if execution is not None:  # being deleted: start again once it is gone
            self.plan.waiting_for_deletion = True
            return base.model_copy(update={"message": f"waits until the previous execution {exec_id} is removed"}), None
        self.plan.start.append(model.Start(execution=exec_id, stage=stage, invocation=self._invocation(
            stage, key, parts, digests, trial=trial, objective=objective, rule=rule)))
        self.claimed.add(exec_id)
        self.slots -= 1
        return base.model_copy(update={"phase": "Running", "execution": exec_id, "attempts": 1, "cache_hit": False,
                                       "started_at": self.obs.now, "finished_at": None, "message": reason}), None

    def follow(self, base: documents.StageResult, ex: model.Execution,
               prior: documents.StageResult) -> documents.StageResult:
        """The result of a stage whose execution exists."""
        same_run = ex.run_id == self.ctx.run_id
        base = base.model_copy(update={"execution": ex.id, "attempts": ex.attempts, "cache_hit": not same_run,
                                       "started_at": prior.started_at or ex.started_at,
                                       "image": ex.image or base.image})
        if ex.phase == "Running":
            if self.obs.cancel or self.spec.suspend:
                self.plan.cancel.append(ex.id)
                return base.model_copy(update={"phase": "Running", "message": "stopping"})
            kept = prior.message if prior.phase == "Running" and prior.execution == ex.id else ""
            return base.model_copy(update={"phase": "Running", "message": kept or f"running as {ex.id}"})
        if ex.phase in ("Failed", "Cancelled") and not same_run:
            self.plan.cancel.append(ex.id)  # another run's failure: remove it and run again
            self.plan.waiting_for_deletion = True
            return base.model_copy(update={"message": f"replacing the failed execution {ex.id} of an earlier run"})
        if ex.phase == "Cancelled":
            return base.model_copy(update={"phase": "Cancelled", "finished_at": ex.finished_at,
                                           "message": ex.message or "cancelled while running"})
        if ex.phase == "Failed":
            return base.model_copy(update={"phase": "Failed", "finished_at": ex.finished_at, "message": ex.message})
        if ex.result is None:
            return base.model_copy(update={
                "phase": "Failed", "finished_at": ex.finished_at,
                "message": f"{ex.id} succeeded but recorded nothing for key {base.cache_key}: the stage must run "
                           "`tycho stage-exec` against the same store"})
        return base.model_copy(update={
            "phase": "Succeeded" if same_run else "Cached", "outputs": dict(ex.result.outputs),
            "record": ex.result.record, "metrics": dict(ex.result.metrics), "checks": list(ex.result.checks),
            "finished_at": ex.finished_at,
            "message": ""})

    # ---- helpers ------------------------------------------------------------------------
    def _cache_reason(self, stage: models.Stage) -> str | None:
        """Why the cache is not consulted, or None when it is."""
        if self.ctx.force:
            return "cache ignored (reproduce)"
        if not stage.cache.enabled:
            return "cache disabled for this stage"
        return None

    def _invocation(self, stage: models.Stage, key: str, parts: dict[str, Any], digests: dict[str, str], *,
                    trial: int | None = None, objective: str | None = None,
                    rule: invocation.StopRule | None = None) -> invocation.Invocation:
        meta = self.ctx.pipeline.metadata
        types: dict[str, models.OutputType] = {}
        for inp in stage.inputs:
            if inp.from_:
                up, _, out = inp.from_.partition("/")
                spec = self.by_name[up].output(out)
                types[inp.name] = spec.type if spec else "file"
        return invocation.build(
            stage=stage, pipeline={"name": meta.name, "uid": meta.uid or f"local:{self.ctx.run_id}",
                                   "generation": meta.generation or 1},
            run_id=self.ctx.run_id, store_url=self.ctx.store, image=self.ctx.images[stage.name], code=self.ctx.code,
            workdir=self.ctx.workdir, cache_key=key, key_components=parts, input_digests=digests,
            producers={n: r for n, r in self.producers.items() if r}, input_types=types, executor=self.ctx.executor,
            trial=trial, stop_rule=rule, objective=objective)

    def _settle(self) -> None:
        """Once nothing runs after a failure or a cancel, what never started is Skipped."""
        stages = self.plan.stages
        if not any(s.phase == "Running" for s in stages.values()) and (self.failed or self.obs.cancel or any(
                s.phase in ("Failed", "Cancelled") for s in stages.values())):
            why = "not run: the run was cancelled" if self.obs.cancel else "not run: a stage of this run failed"
            for name, s in stages.items():
                if s.phase in ("Pending", "Suspended"):
                    stages[name] = s.model_copy(update={"phase": "Skipped", "message": why})
        self.plan.phase = run_phase(stages, self.obs.cancel)


def step(ctx: model.Context, obs: model.Observed) -> model.Plan:
    """The stage results now and the actions to take; see the module docstring."""
    return Pass(ctx, obs).run()


def spec_digest(spec: models.Spec) -> str:
    """What makes a new run: the whole spec except ``suspend``."""
    return cachekey.digest(spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"suspend"}))


def cluster_run_id(meta: models.Metadata, digest: str) -> str:
    """A cluster run's id, from the object's identity and generation and the spec digest:
    the same on every reconcile and after a restart, so a run is never started twice."""
    tag = hashlib.sha256(f"{meta.uid}/{meta.generation}/{digest}".encode()).hexdigest()[:6]
    return f"{meta.name}-g{meta.generation or 0}-{tag}"
