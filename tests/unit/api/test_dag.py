"""Graph order, readiness and cycle detection."""

from __future__ import annotations

from tycho.api import dag

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


def test_find_cycle_ignores_references_to_unknown_stages() -> None:
    assert dag.find_cycle({"a": ["zz"], "b": ["a"]}) == []


def test_a_long_chain_listed_in_reverse_is_ordered_without_recursion() -> None:
    n = 20000
    chain = {f"s{i}": ([f"s{i - 1}"] if i else []) for i in reversed(range(n))}
    order = dag.order(chain)
    assert order[0] == "s0" and order[-1] == f"s{n - 1}"
    assert dag.find_cycle(chain) == []
    chain["s0"] = [f"s{n - 1}"]
    assert len(dag.find_cycle(chain)) == n + 1
