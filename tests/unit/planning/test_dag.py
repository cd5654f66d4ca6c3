"""Graph order, readiness and cycle detection."""

from __future__ import annotations

from tycho.planning import dag

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_order_puts_every_stage_after_its_dependencies() -> None:
    order = dag.order(DIAMOND)
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")


def test_order_is_stable_in_declaration_order_among_ready_stages() -> None:
    assert dag.order({"z": [], "y": [], "x": ["z"]}) == ["z", "y", "x"]


def test_ready_lists_stages_whose_dependencies_finished() -> None:
    assert dag.ready(DIAMOND, finished=set(), started=set()) == ["a"]
    assert dag.ready(DIAMOND, finished={"a"}, started=set()) == ["b", "c"]
    assert dag.ready(DIAMOND, finished={"a"}, started={"b"}) == ["c"]
    assert dag.ready(DIAMOND, finished={"a", "b"}, started={"c"}) == []


def test_find_cycle_returns_the_loop() -> None:
    assert dag.find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "c", "b", "a"]
    assert dag.find_cycle(DIAMOND) == []


def test_upstream_closure_is_transitive() -> None:
    assert dag.upstream_closure(DIAMOND, "d") == {"a", "b", "c"}
