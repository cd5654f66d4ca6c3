"""The filter language: what users type parses to the tree they mean, or fails saying where."""

from __future__ import annotations

import pytest

from tycho.index import filters as f


def test_comparisons_join_with_and_or_and_parentheses() -> None:
    expr = f.parse("test_accuracy>=0.95 AND (train.epochs=30 OR tag=digits)")
    assert expr == f.And((f.Cond("test_accuracy", ">=", ("0.95",)),
                          f.Or((f.Cond("train.epochs", "=", ("30",)), f.Cond("tag", "=", ("digits",))))))


def test_in_lists_regex_and_missing_tests() -> None:
    assert f.parse("train.lr in (0.001, 0.003)") == f.Cond("train.lr", "in", ("0.001", "0.003"))
    assert f.parse("owner not in (a,b)") == f.Cond("owner", "not in", ("a", "b"))
    assert f.parse("owner~'^ml-'") == f.Cond("owner", "~", ("^ml-",))
    assert f.parse("test_ece is missing") == f.Cond("test_ece", "missing")
    assert f.parse("test_ece is not missing") == f.Cond("test_ece", "present")
    assert f.parse("not phase=Failed || x!=1") == f.Or((f.Not(f.Cond("phase", "=", ("Failed",))),
                                                       f.Cond("x", "!=", ("1",))))


def test_repeated_filters_must_all_hold_and_keys_are_listed() -> None:
    expr = f.parse_all(["a>1", "tag=x"])
    assert isinstance(expr, f.And) and f.keys(expr) == ["a", "tag"]
    assert f.parse_all(["  "]) is None


@pytest.mark.parametrize("text, says", [("a=", "expected a value"), ("a b", "expected an operator"),
                                        ("(a=1", "expected ')'"), ("a=1 b=2", "join conditions with AND or OR"),
                                        ("a is blue", "'missing' or 'present'")])
def test_mistakes_say_what_was_expected(text: str, says: str) -> None:
    with pytest.raises(f.FilterError, match=says.replace("(", r"\(").replace(")", r"\)")):
        f.parse(text)


def test_since_reads_units() -> None:
    assert f.seconds("2d") == 172800 and f.seconds("90s") == 90 and f.seconds("1.5h") == 5400
    with pytest.raises(f.FilterError):
        f.seconds("yesterday")
