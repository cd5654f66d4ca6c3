"""Questions only content-addressed provenance can answer, asked of the index.

- ``same_inputs_different_outputs``: stage executions with the same cache key (so the same
  input, code and image digests, params, command and env) whose output digests differ:
  a stage that is not deterministic, or a machine that computes differently.
- ``downstream``: every run and stage built from a digest (raw data, a model...), following
  outputs into the stages that read them, across runs, to the deliverables (releases).
"""

from __future__ import annotations

import pydantic
from pydantic import alias_generators

from tycho.index import db


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=alias_generators.to_camel, populate_by_name=True)


class Execution(Model):
    run_id: str
    stage: str
    outputs: dict[str, str]
    created_at: str


class Group(Model):
    stage: str
    cache_key: str
    variants: int
    """How many different output sets the executions made."""
    executions: list[Execution]


class Reached(Model):
    run_id: str
    pipeline: str
    phase: str
    created_at: str
    stages: list[str]
    """The run's stages that read the digest or something made from it."""
    deliverables: list[str]
    """Outputs (STAGE/OUTPUT) of those stages that no stage reads: releases, reports."""


class Downstream(Model):
    digest: str
    runs: list[Reached]
    digests: int
    """How many digests were derived from it (itself included)."""


def same_inputs_different_outputs(index: db.Index, limit: int = 200) -> list[Group]:
    conn = index.conn
    keys = [r[0] for r in conn.execute(
        "SELECT cache_key FROM stages WHERE phase='Succeeded' AND cache_key IS NOT NULL "
        "GROUP BY cache_key HAVING count(*) > 1").fetchall()]
    groups: list[Group] = []
    for key in keys:
        executions: list[Execution] = []
        for rid, run_id, stage, created in conn.execute(
                "SELECT r.id, r.run_id, s.name, r.created_at FROM stages s JOIN runs r ON r.id = s.run "
                "WHERE s.cache_key=? AND s.phase='Succeeded' ORDER BY r.created_at", (key,)).fetchall():
            outs = dict(conn.execute("SELECT name, digest FROM io WHERE run=? AND stage=? AND role='out'",
                                     (rid, stage)).fetchall())
            executions.append(Execution(run_id=run_id, stage=stage, outputs=outs, created_at=created))
        variants = len({tuple(sorted(e.outputs.items())) for e in executions})
        if variants > 1:
            groups.append(Group(stage=executions[0].stage, cache_key=key, variants=variants, executions=executions))
        if len(groups) >= limit:
            break
    return groups


def downstream(index: db.Index, digest: str, max_rounds: int = 50) -> Downstream:
    conn = index.conn
    digest = digest.removeprefix("sha256:").strip().lower()
    if len(digest) < 64:  # a prefix, as people copy them from tables
        matches = [r[0] for r in conn.execute("SELECT DISTINCT digest FROM io WHERE digest LIKE ? LIMIT 2",
                                              (digest.replace("%", "") + "%",))]
        if len(matches) != 1:
            raise LookupError(f"{digest!r} names {'no' if not matches else 'more than one'} digest of any run's "
                              "inputs or outputs (give more of it)")
        digest = matches[0]
    seen = {digest}
    frontier = {digest}
    touched: dict[int, set[str]] = {}
    for _ in range(max_rounds):
        if not frontier:
            break
        marks = ",".join("?" * len(frontier))
        readers = conn.execute(f"SELECT DISTINCT run, stage FROM io WHERE role='in' AND digest IN ({marks})",
                               list(frontier)).fetchall()
        new: set[str] = set()
        for rid, stage in readers:
            touched.setdefault(int(rid), set()).add(str(stage))
            for (out,) in conn.execute("SELECT digest FROM io WHERE run=? AND stage=? AND role='out'", (rid, stage)):
                if out not in seen:
                    seen.add(out)
                    new.add(out)
        frontier = new
    found: list[Reached] = []
    for rid, stages in touched.items():
        row = conn.execute("SELECT run_id, pipeline, phase, created_at FROM runs WHERE id=?", (rid,)).fetchone()
        if row is None:
            continue
        read = {d for (d,) in conn.execute("SELECT digest FROM io WHERE run=? AND role='in'", (rid,))}
        deliver = [f"{s}/{n}" for s, n, d in conn.execute(
            "SELECT stage, name, digest FROM io WHERE run=? AND role='out' ORDER BY stage, name", (rid,))
            if s in stages and d not in read]
        found.append(Reached(run_id=row[0], pipeline=row[1], phase=row[2], created_at=row[3],
                             stages=sorted(stages), deliverables=deliver))
    found.sort(key=lambda r: r.created_at, reverse=True)
    return Downstream(digest=digest, runs=found, digests=len(seen))
