"""The local runner (the embedded default): every stage as a subprocess on this machine.

``run`` plans with ``tycho.planning.plan``, executes misses through the shared stage
wrapper (a thread per running stage, at most ``spec.maxParallel`` at once), and writes the
run summary. ``tycho run`` and ``tycho reproduce`` call it.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from pathlib import Path
from typing import Any

from tycho.api import models
from tycho.planning import dag, plan
from tycho.provenance import runs, store as store_mod
from tycho.runners import progress, resolve
from tycho.stage import invocation, wrapper


@dataclasses.dataclass
class Options:
    store_url: str
    manifest_dir: Path
    code_dir: Path | None = None  # reproduce: the restored code archive
    force: bool = False  # reproduce: ignore the cache
    reproduces: str | None = None
    logs_dir: Path = Path(".tycho/logs")
    view_dir: Path | None = Path(".tycho/runs")
    max_parallel: int | None = None


def _stage_entry(name: str) -> dict[str, Any]:
    return {"name": name, "phase": "Pending", "cacheHit": None, "cacheKey": None, "keyComponents": None,
            "outputs": {}, "record": None, "metrics": {}, "attempts": 0, "startedAt": None,
            "finishedAt": None, "message": ""}


def run(pipeline: models.ExperimentPipeline, opts: Options, reporter: progress.Reporter) -> dict[str, Any]:
    """Run the pipeline; returns the run summary (also stored under runs/<run-id>.json)."""
    spec = pipeline.spec
    store = store_mod.Store(opts.store_url)
    root = opts.code_dir or resolve.code_root(pipeline, opts.manifest_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"spec.code.path: {root} is not a directory (fix: point it at the stage code, "
                                "relative to the manifest)")
    code_ref = resolve.store_code(store, root)
    run_id = runs.new_run_id(pipeline.metadata.name)
    stages = {s.name: s for s in spec.stages}
    deps = dag.edges(spec)
    order = dag.order(deps)
    summary: dict[str, Any] = {
        "runId": run_id, "pipeline": pipeline.metadata.name, "createdAt": wrapper.now(), "finishedAt": None,
        "phase": "Running", "store": store.url, "description": spec.description, "owner": spec.owner,
        "tags": list(spec.tags), "reproduces": opts.reproduces, "code": code_ref,
        "environment": resolve.local_environment_digest(),
        "manifest": pipeline.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}),
        "stages": {name: _stage_entry(name) for name in order},
    }
    runs.save(store, summary)
    external = resolve.external_digests(pipeline)
    lookup = resolve.lookup(store)
    images = {n: resolve.local_image(s) for n, s in stages.items()}
    outputs: dict[str, dict[str, str]] = {}
    producers: dict[str, str] = {}
    failed: list[str] = []
    reporter.start(run_id, order)
    logs = opts.logs_dir / run_id
    logs.mkdir(parents=True, exist_ok=True)
    code = invocation.CodeRef(digest=str(code_ref["digest"]), workdir=str(root), uri=str(code_ref["uri"]),
                              commit=code_ref.get("commit"), dirty=code_ref.get("dirty"))  # type: ignore[arg-type]
    pipeline_ref = {"name": pipeline.metadata.name, "uid": pipeline.metadata.uid or f"local:{run_id}",
                    "generation": pipeline.metadata.generation or 1}
    running: dict[cf.Future[invocation.Result], str] = {}
    limit = opts.max_parallel or spec.max_parallel

    def finish(name: str, phase: str, detail: str) -> None:
        entry = summary["stages"][name]
        entry["phase"], entry["finishedAt"] = phase, wrapper.now()
        reporter.stage(name, phase, detail)

    try:
        with cf.ThreadPoolExecutor(max_workers=limit) as pool:
            while True:
                hit_now = False
                started = {n for n, e in summary["stages"].items() if e["phase"] != "Pending"}
                for name in ([] if failed else dag.ready(deps, set(outputs), started)):
                    if len(running) >= limit:
                        break
                    entry = summary["stages"][name]
                    d = plan.decide(stages[name], image=images[name], code_digest=code.digest, outputs=outputs,
                                    external=external, lookup=lookup, force=opts.force)
                    entry.update(cacheKey=d.key, keyComponents=d.components, startedAt=wrapper.now())
                    if d.action == "hit" and d.cached is not None:
                        outputs[name], producers[name] = d.cached.outputs, d.cached.record
                        entry.update(cacheHit=True, outputs=d.cached.outputs, record=d.cached.record,
                                     metrics=d.cached.metrics)
                        finish(name, "Cached", "cache hit " + (d.key or "")[:12])
                        hit_now = True
                        continue
                    inv = invocation.build(
                        stage=stages[name], pipeline=pipeline_ref, run_id=run_id, invocation_id=f"local:{run_id}/{name}",
                        store_url=store.url, image=invocation.ImageRef(reference=stages[name].image,
                                                                       digest=resolve.local_environment_digest(),
                                                                       resolved_by="local-environment"),
                        code=code, cache_key=d.key or "", input_digests=d.input_digests, producers=producers,
                        object_uri=lambda h: store.uri(store.object_rel(h)),
                        attempts=stages[name].retries.limit + 1)
                    entry.update(cacheHit=False, phase="Running")
                    reporter.stage(name, "Running", d.reason)
                    running[pool.submit(_execute, inv, logs / f"{name}.log", reporter)] = name
                runs.save(store, summary)
                if hit_now:
                    continue  # hits may have made downstream stages ready
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    entry = summary["stages"][name]
                    try:
                        result = fut.result()
                    except Exception as err:  # noqa: BLE001 - any failure fails the stage, with its message
                        failed.append(name)
                        entry["message"] = str(err)
                        finish(name, "Failed", f"{str(err).splitlines()[0]} (log: {logs / (name + '.log')})")
                        continue
                    outputs[name], producers[name] = result.outputs, result.record
                    entry.update(outputs=result.outputs, record=result.record, metrics=result.metrics,
                                 attempts=result.attempts)
                    finish(name, "Succeeded", _headline(result.metrics))
    finally:
        reporter.stop()
    for name, entry in summary["stages"].items():
        if entry["phase"] == "Pending":
            entry["phase"], entry["message"] = "Skipped", "an upstream stage failed"
    summary["phase"] = "Failed" if failed else "Succeeded"
    summary["finishedAt"] = wrapper.now()
    runs.save(store, summary)
    if opts.view_dir is not None:
        for name, entry in summary["stages"].items():
            resolve.materialise(store, entry["outputs"], opts.view_dir / run_id / name)
    return summary


def _execute(inv: invocation.Invocation, log_path: Path, reporter: progress.Reporter) -> invocation.Result:
    with open(log_path, "w", encoding="utf-8") as log:
        def sink(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            reporter.log(inv.stage, line)
        return wrapper.execute(inv, sink)


def _headline(metrics: dict[str, float]) -> str:
    items = list(metrics.items())[-3:]
    return " ".join(f"{k}={v:.4g}" for k, v in items)
