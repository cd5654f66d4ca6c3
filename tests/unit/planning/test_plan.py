"""Stage decisions: hit, run or wait, from what is known."""

from __future__ import annotations

from pathlib import Path

from tycho.api import validation
from tycho.planning import plan

TOY = validation.load_text((Path(__file__).resolve().parents[2] / "fixtures" / "toy" / "toy.yaml").read_text())
EXTERNAL = {"NOTES_URL": "ab" * 32}
IMAGES = {s.name: s.image for s in TOY.spec.stages}


def test_first_run_runs_the_root_and_the_rest_waits() -> None:
    decisions = plan.simulate(TOY.spec, images=IMAGES, code_digest="c", external=EXTERNAL, lookup=lambda k: None)
    assert [(d.stage, d.action) for d in decisions] == [("generate", "run"), ("total", "wait"), ("report", "wait")]
    assert decisions[0].key and decisions[1].key is None


def test_hits_feed_recorded_outputs_downstream() -> None:
    seen: dict[str, plan.CacheEntry] = {}

    def lookup(key: str) -> plan.CacheEntry:
        entry = plan.CacheEntry(key=key, outputs={"numbers": "1" * 64, "total": "2" * 64, "report": "3" * 64},
                                record=f"rec-{key[:6]}")
        seen[key] = entry
        return entry

    decisions = plan.simulate(TOY.spec, images=IMAGES, code_digest="c", external=EXTERNAL, lookup=lookup)
    assert [d.action for d in decisions] == ["hit", "hit", "hit"]
    assert decisions[1].input_digests == {"numbers": "1" * 64}
    assert decisions[2].input_digests == {"total": "2" * 64, "notes": "ab" * 32}


def test_force_runs_even_with_a_cache_entry() -> None:
    stage = TOY.spec.stages[0]
    d = plan.decide(stage, image="i", code_digest="c", outputs={}, external={}, force=True,
                    lookup=lambda k: plan.CacheEntry(k, {}, "r"))
    assert d.action == "run" and "reproduce" in d.reason


def test_disabled_cache_runs() -> None:
    stage = TOY.spec.stages[0].model_copy(update={"cache": TOY.spec.stages[0].cache.model_copy(update={"enabled": False})})
    d = plan.decide(stage, image="i", code_digest="c", outputs={}, external={},
                    lookup=lambda k: plan.CacheEntry(k, {}, "r"))
    assert d.action == "run" and "disabled" in d.reason
