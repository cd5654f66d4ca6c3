"""The filter language of ``tycho runs --filter`` and the board's leaderboard, parsed to a tree.

Pure: text in, ``Expr`` out; ``tycho.index.query`` compiles the tree to SQL. What the
experiment trackers' users ask for most: comparisons on metrics and params, AND / OR /
NOT with parentheses, IN lists, regex match and missing-value tests::

    test_accuracy>=0.95 AND train.epochs=30
    tag=digits OR owner~'^ml-'
    train.learning_rate in (0.001, 0.003)
    phase!=Failed and test_ece is missing

Keys are metric names, ``STAGE.PARAM`` params, ``STAGE.METRIC`` stage metrics, run
attributes (owner, phase, pipeline, created, ...) or ``tag``; ``params.`` / ``metrics.``
prefixes pick one kind when a name is both. Values are numbers, bare words or quoted strings.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

Op = Literal["=", "!=", "<", "<=", ">", ">=", "~", "!~", "in", "not in", "missing", "present"]


class FilterError(ValueError):
    """The expression does not parse; the message points at where and says what was expected."""


@dataclasses.dataclass(frozen=True)
class Cond:
    key: str
    op: Op
    values: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Not:
    expr: Expr


@dataclasses.dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclasses.dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Cond | Not | And | Or

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|<=|>=|!~|=|<|>|~|&&|\|\||!)
    | (?P<paren>[(),])
    | (?P<word>[^\s()=!<>~,'"&|]+)
    )""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "missing", "present", "null", "none"}


@dataclasses.dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot read {text[pos:pos + 20]!r} at position {pos} of {text!r}")
        kind = m.lastgroup or "word"
        value, start = m.group(kind), m.start(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        elif kind == "op" and value in ("&&", "||", "!"):
            kind, value = "kw", {"&&": "and", "||": "or", "!": "not"}[value]
        out.append(_Tok(kind, value, start))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.toks, self.i = text, _tokens(text), 0

    def peek(self, kind: str | None = None, text: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        tok = self.toks[self.i]
        return (kind is None or tok.kind == kind) and (text is None or tok.text == text)

    def take(self, kind: str | None = None, text: str | None = None, what: str = "") -> _Tok:
        if not self.peek(kind, text):
            found = repr(self.toks[self.i].text) if self.i < len(self.toks) else "the end"
            raise FilterError(f"expected {what or text or kind} but found {found} in {self.text!r}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.or_()
        if self.i < len(self.toks):
            raise FilterError(f"unexpected {self.toks[self.i].text!r} at position {self.toks[self.i].pos} "
                              f"of {self.text!r} (join conditions with AND or OR)")
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.peek("kw", "or"):
            self.i += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.unary()]
        while self.peek("kw", "and"):
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Expr:
        if self.peek("kw", "not"):
            self.i += 1
            return Not(self.unary())
        if self.peek("paren", "("):
            self.i += 1
            expr = self.or_()
            self.take("paren", ")", "')'")
            return expr
        return self.cond()

    def value(self) -> str:
        if self.peek("str") or self.peek("word"):
            return self.take().text
        if self.peek("kw") and self.toks[self.i].text in ("null", "none", "missing", "present"):
            return self.take().text
        return self.take("word", what="a value").text

    def cond(self) -> Cond:
        key = self.take("word", what="a metric, param, tag or attribute name").text
        if self.peek("kw", "is"):
            self.i += 1
            negate = self.peek("kw", "not")
            if negate:
                self.i += 1
            word = self.take("kw", what="'missing' or 'present'").text
            if word not in ("missing", "present", "null", "none"):
                raise FilterError(f"expected 'missing' or 'present' after {key} is, found {word!r}")
            missing = word != "present"
            return Cond(key, "missing" if missing != negate else "present")
        negate = False
        if self.peek("kw", "not"):
            self.i += 1
            negate = True
            if not self.peek("kw", "in"):
                raise FilterError(f"expected 'in' after {key} not")
        if self.peek("kw", "in"):
            self.i += 1
            self.take("paren", "(", "'(' after in")
            values = [self.value()]
            while self.peek("paren", ","):
                self.i += 1
                values.append(self.value())
            self.take("paren", ")", "')'")
            return Cond(key, "not in" if negate else "in", tuple(values))
        op = self.take("op", what="an operator (= != < <= > >= ~ !~ in, is missing)").text
        op = "=" if op == "==" else op
        return Cond(key, op, (self.value(),))  # type: ignore[arg-type]


def parse(text: str) -> Expr:
    """One expression; raises FilterError with the position of the problem."""
    if not text.strip():
        raise FilterError("empty filter")
    return _Parser(text).parse()


def parse_all(texts: list[str]) -> Expr | None:
    """Several expressions (repeated ``--filter``), all of which must hold."""
    exprs = [parse(t) for t in texts if t.strip()]
    if not exprs:
        return None
    return exprs[0] if len(exprs) == 1 else And(tuple(exprs))


def keys(expr: Expr | None) -> list[str]:
    """Every key the expression names, in order."""
    if expr is None:
        return []
    if isinstance(expr, Cond):
        return [expr.key]
    if isinstance(expr, Not):
        return keys(expr.expr)
    return [k for item in expr.items for k in keys(item)]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(text: str) -> float:
    """``--since 2d``: 90s, 15m, 6h, 2d, 1w."""
    m = _DURATION.match(text)
    if not m:
        raise FilterError(f"{text!r}: expected a number and a unit (s, m, h, d, w), e.g. 2d or 6h")
    return float(m[1]) * _UNITS[m[2]]
