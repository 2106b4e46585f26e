"""Boolean rules over feature columns: a small recursive-descent parser and a vectorised evaluator.

Rules are read by people who are not engineers, so the language is small and spelled out.
It is parsed into a tree of frozen nodes and evaluated column-wise with numpy; nothing is ever
handed to Python's ``eval`` or ``exec``, so a rule can only compare columns with constants.

Grammar (keywords are case-insensitive; ``not`` binds tighter than ``and``, ``and`` tighter
than ``or``, as in SQL and Python)::

    rule     := or_expr END
    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" or_expr ")" | test
    test     := FEATURE CMP operand
              | FEATURE ["not"] "in" "(" value ("," value)* ")"
              | FEATURE "is" ["not"] "missing"
    operand  := value | FEATURE
    value    := ["-"] NUMBER | STRING            (STRING is '...' or "...", no escapes)
    CMP      := "<" | "<=" | ">" | ">=" | "==" | "!="

Missing values (NaN, None) compare false under every comparison and ``in``, including ``!=``
and ``not in``; only ``is missing`` is true for them. ``not`` flips its operand as computed, so
``not (x > 3)`` is true when ``x`` is missing: write ``x <= 3`` to leave missing rows out.

>>> rule = Rule.parse("n_teammate_invited_all >= 3 and domain_class in ('corporate', 'enterprise')")
>>> rule.features
('n_teammate_invited_all', 'domain_class')
"""

from __future__ import annotations

import difflib
import operator
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from propensity.errors import ConfigError, PropensityWarning

__all__ = [
    "And",
    "Compare",
    "Feature",
    "IsIn",
    "IsMissing",
    "Node",
    "Not",
    "Or",
    "Rule",
    "RuleError",
]

MAX_DEPTH = (
    50  # nesting of parentheses and `not`; keeps the recursive parser far from Python's limit
)

_CMP: dict[str, Callable[[np.ndarray, object], np.ndarray]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_KEYWORDS = {"and", "or", "not", "in", "is", "missing"}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<punct>[(),-])
    """,
    re.VERBOSE,
)
# Characters people type from other languages, and what to write instead.
_HINTS = {
    "=": "use '==' to test equality",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' or '!='",
    "[": "use parentheses: x in ('a', 'b')",
    "'": "close the quoted string with a matching quote",
    '"': "close the quoted string with a matching quote",
}


class RuleError(ConfigError):
    """A rule expression cannot be parsed, or names features or values the data does not have.

    ``position`` is the 0-based character offset of the first problem in ``expression``, or
    ``None`` when the problem is not tied to one place.
    """

    def __init__(self, message: str, *, expression: str, position: int | None = None) -> None:
        super().__init__(message)
        self.expression = expression
        self.position = position


# --- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """A reference to a feature column; ``pos`` is where it appears in the rule text."""

    name: str
    pos: int = field(default=-1, compare=False)

    def __str__(self) -> str:
        return self.name


Value = float | str


@dataclass(frozen=True)
class Compare:
    """``feature <op> value`` or ``feature <op> feature``."""

    left: Feature
    op: str
    right: Value | Feature

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        left, valid = _column(frame, self.left)
        if isinstance(self.right, Feature):
            right, right_valid = _column(frame, self.right)
            valid = valid & right_valid
        else:
            right = self.right
        with np.errstate(invalid="ignore"):
            result = np.asarray(_CMP[self.op](left, right), dtype=bool)
        return result & valid

    def features(self) -> Iterator[Feature]:
        yield self.left
        if isinstance(self.right, Feature):
            yield self.right

    def __str__(self) -> str:
        return f"{self.left} {self.op} {_show(self.right)}"


@dataclass(frozen=True)
class IsIn:
    """``feature in (v1, v2, ...)``, or ``not in`` when ``negated``."""

    feature: Feature
    values: tuple[Value, ...]
    negated: bool = False

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        column, valid = _column(frame, self.feature)
        hit = np.zeros(len(frame), dtype=bool)
        for value in self.values:
            hit |= np.asarray(column == value, dtype=bool)
        return (~hit if self.negated else hit) & valid

    def features(self) -> Iterator[Feature]:
        yield self.feature

    def __str__(self) -> str:
        word = "not in" if self.negated else "in"
        return f"{self.feature} {word} ({', '.join(_show(v) for v in self.values)})"


@dataclass(frozen=True)
class IsMissing:
    """``feature is missing``, or ``is not missing`` when ``negated``."""

    feature: Feature
    negated: bool = False

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        _, valid = _column(frame, self.feature)
        return valid if self.negated else ~valid

    def features(self) -> Iterator[Feature]:
        yield self.feature

    def __str__(self) -> str:
        return f"{self.feature} is {'not ' if self.negated else ''}missing"


@dataclass(frozen=True)
class Not:
    operand: Node

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        return ~self.operand.evaluate(frame)

    def features(self) -> Iterator[Feature]:
        yield from self.operand.features()

    def __str__(self) -> str:
        return f"not {_wrap(self.operand, Not)}"


@dataclass(frozen=True)
class And:
    """All operands hold; n-ary so long chains do not nest (and cannot exhaust the stack)."""

    operands: tuple[Node, ...]

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        result = self.operands[0].evaluate(frame)
        for node in self.operands[1:]:
            result = result & node.evaluate(frame)
        return result

    def features(self) -> Iterator[Feature]:
        for node in self.operands:
            yield from node.features()

    def __str__(self) -> str:
        return " and ".join(_wrap(node, And) for node in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        result = self.operands[0].evaluate(frame)
        for node in self.operands[1:]:
            result = result | node.evaluate(frame)
        return result

    def features(self) -> Iterator[Feature]:
        for node in self.operands:
            yield from node.features()

    def __str__(self) -> str:
        return " or ".join(_wrap(node, Or) for node in self.operands)


Node = Compare | IsIn | IsMissing | Not | And | Or
_BINDING = {Or: 0, And: 1, Not: 2}  # tests (Compare, IsIn, IsMissing) bind tightest


def _wrap(node: Node, parent: type) -> str:
    inner = _BINDING.get(type(node), 3)
    return f"({node})" if inner <= _BINDING[parent] and type(node) is not Not else str(node)


def _show(value: Value | Feature) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column(frame: pd.DataFrame, feature: Feature) -> tuple[np.ndarray, np.ndarray]:
    """The column as a numpy array (float for numbers, object otherwise) and its not-null mask."""
    series = frame[feature.name]
    valid = series.notna().to_numpy(dtype=bool)
    if _kind(series) == "number":
        return series.to_numpy(dtype=float, na_value=np.nan), valid
    return series.to_numpy(dtype=object), valid


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return "number"
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(series.dtype):
        return "text"
    return "other"


# --- tokens and parser ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, kw, str, op, punct, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            hint = _HINTS.get(
                char,
                "rules use feature names, numbers, quoted text, comparisons, "
                "and, or, not, in, is missing and parentheses",
            )
            raise _syntax(text, pos, f"unexpected character {char!r}; {hint}")
        kind = match.lastgroup or ""
        word = match.group()
        if kind == "num" and re.match(r"[A-Za-z_]", text[match.end() : match.end() + 1]):
            raise _syntax(
                text,
                pos,
                f"a number must not run into letters (found {text[pos : pos + 8]!r}); "
                "put a space or an operator between them",
            )
        if kind == "name" and word.lower() in _KEYWORDS:
            tokens.append(_Token("kw", word.lower(), pos))
        elif kind != "space":
            tokens.append(_Token(kind, word, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _syntax(text: str, pos: int, what: str) -> RuleError:
    return RuleError(
        f"Cannot parse rule {text!r}: at position {pos}, {what}. Fix the rule text; the grammar "
        f"is in propensity/baselines/grammar.py.",
        expression=text,
        position=pos,
    )


def _describe(token: _Token) -> str:
    return "the end of the rule" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            return self.take()
        return None

    def fail(self, expected: str) -> RuleError:
        return _syntax(
            self.text, self.token.pos, f"expected {expected}, found {_describe(self.token)}"
        )

    def expect(self, kind: str, text: str, expected: str) -> _Token:
        token = self.accept(kind, text)
        if token is None:
            raise self.fail(expected)
        return token

    def rule(self) -> Node:
        if self.token.kind == "end":
            raise self.fail("a rule such as 'n_doc_shared_all >= 2'")
        node = self.or_expr()
        if self.token.kind != "end":
            raise self.fail("'and', 'or', ')' or the end of the rule")
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.accept("kw", "or"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.accept("kw", "and"):
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        if self.depth > MAX_DEPTH:
            raise _syntax(
                self.text,
                self.token.pos,
                f"the rule nests more than {MAX_DEPTH} levels of "
                "parentheses and 'not'; simplify it",
            )
        self.depth += 1
        try:
            if self.accept("kw", "not"):
                return Not(self.not_expr())
            if self.accept("punct", "("):
                node = self.or_expr()
                self.expect("punct", ")", "')' to close the parenthesis")
                return node
            return self.test()
        finally:
            self.depth -= 1

    def test(self) -> Node:
        token = self.accept("name")
        if token is None:
            raise self.fail("a feature name, 'not' or '('")
        feature = Feature(token.text, token.pos)
        if op := self.accept("op"):
            return Compare(feature, op.text, self.operand())
        if self.accept("kw", "is"):
            negated = self.accept("kw", "not") is not None
            self.expect("kw", "missing", "'missing' after 'is'" + (" not" if negated else ""))
            return IsMissing(feature, negated)
        negated = self.accept("kw", "not") is not None
        if self.accept("kw", "in"):
            return IsIn(feature, self.value_list(), negated)
        expected = "'in'" if negated else "a comparison (< <= > >= == !=), 'in' or 'is missing'"
        raise self.fail(f"{expected} after {token.text!r}")

    def operand(self) -> Value | Feature:
        token = self.accept("name")
        if token is not None:
            return Feature(token.text, token.pos)
        return self.value()

    def value(self) -> Value:
        if token := self.accept("str"):
            return token.text[1:-1]
        negative = self.accept("punct", "-") is not None
        if token := self.accept("num"):
            number = float(token.text)
            return -number if negative else number
        raise self.fail("a number" if negative else "a number, a quoted text or a feature name")

    def value_list(self) -> tuple[Value, ...]:
        self.expect("punct", "(", "'(' to start the list of values")
        values = [self.value()]
        while self.accept("punct", ","):
            values.append(self.value())
        self.expect("punct", ")", "',' or ')' to close the list of values")
        return tuple(values)


# --- checking against a frame ---------------------------------------------------------------


def _check(
    node: Node, frame: pd.DataFrame, notes: list[str] | None = None
) -> list[tuple[int, str]]:
    """Every problem of ``node`` against ``frame``'s columns, as (position, message).

    Values that are not a level of a categorical column are allowed (the test is simply false
    for every row); each is described in ``notes`` for a warning.
    """
    problems: list[tuple[int, str]] = []
    known = [str(c) for c in frame.columns]
    for feature in node.features():
        if feature.name not in frame.columns:
            close = difflib.get_close_matches(feature.name, known, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            problems.append((feature.pos, f"unknown feature {feature.name!r}{hint}"))
        elif _kind(frame[feature.name]) == "other":
            problems.append(
                (
                    feature.pos,
                    f"feature {feature.name!r} has dtype {frame[feature.name].dtype}; "
                    "rules compare numbers and text only",
                )
            )
    if problems:
        return problems
    for test in _tests(node):
        problems.extend(_check_types(test, frame, [] if notes is None else notes))
    return problems


def _tests(node: Node) -> Iterator[Compare | IsIn | IsMissing]:
    if isinstance(node, And | Or):
        for operand in node.operands:
            yield from _tests(operand)
    elif isinstance(node, Not):
        yield from _tests(node.operand)
    else:
        yield node


def _check_types(
    test: Compare | IsIn | IsMissing, frame: pd.DataFrame, notes: list[str]
) -> list[tuple[int, str]]:
    if isinstance(test, IsMissing):
        return []
    feature = test.left if isinstance(test, Compare) else test.feature
    series = frame[feature.name]
    kind = _kind(series)
    if isinstance(test, Compare) and isinstance(test.right, Feature):
        other = _kind(frame[test.right.name])
        if kind != other:
            return [(feature.pos, f"{test} compares a {kind} feature with a {other} feature")]
        if kind == "text" and test.op not in ("==", "!="):
            return [(feature.pos, f"{test} orders text; text features allow only == and !=")]
        return []
    values = (test.right,) if isinstance(test, Compare) else test.values
    problems = []
    for value in values:
        if kind == "number" and isinstance(value, str):
            problems.append(
                (
                    feature.pos,
                    f"numeric feature {feature.name!r} is compared with text {value!r}; "
                    "compare it with a number",
                )
            )
        elif kind == "text" and not isinstance(value, str):
            problems.append(
                (
                    feature.pos,
                    f"text feature {feature.name!r} is compared with the number "
                    f"{_show(value)}; quote the value, e.g. '{_show(value)}'",
                )
            )
        elif kind == "text" and isinstance(series.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in series.cat.categories]
            if value not in levels:
                close = difflib.get_close_matches(value, levels, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                notes.append(
                    f"{value!r} is not a level of {feature.name!r} seen in training, so "
                    f"{test} is false for every user; {hint}levels are "
                    f"{', '.join(map(repr, levels))}"
                )
    if kind == "text" and isinstance(test, Compare) and test.op not in ("==", "!="):
        problems.append((feature.pos, f"{test} orders text; text features allow only == and !="))
    return problems


@dataclass(frozen=True)
class Rule:
    """A parsed rule: its text and its tree.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"n_doc_shared_all": [0.0, 3.0, None]})
    >>> Rule.parse("n_doc_shared_all >= 2").evaluate(frame).tolist()
    [False, True, False]
    """

    text: str
    node: Node

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse ``text``; raise :class:`RuleError` naming the position and what was expected."""
        if not isinstance(text, str):
            raise RuleError(
                f"A rule must be text such as 'n_doc_shared_all >= 2'. Got {type(text).__name__} "
                f"{text!r} instead.",
                expression=str(text),
            )
        return cls(text, _Parser(text).rule())

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns the rule reads, in order of first appearance."""
        return tuple(dict.fromkeys(f.name for f in self.node.features()))

    def check(self, frame: pd.DataFrame, *, name: str | None = None, warn: bool = False) -> None:
        """Raise :class:`RuleError` listing every unknown feature and type mismatch at once.

        With ``warn``, a value that is not a level of a categorical feature (allowed: the test
        is false) is reported as a :class:`~propensity.errors.PropensityWarning`.
        """
        notes: list[str] = []
        problems = _check(self.node, frame, notes)
        label = f"Rule {name!r} ({self.text!r})" if name else f"Rule {self.text!r}"
        if warn:
            for note in notes:
                warnings.warn(f"{label}: {note}.", PropensityWarning, stacklevel=3)
        if not problems:
            return
        body = "; ".join(f"at position {pos}: {msg}" for pos, msg in problems)
        raise RuleError(
            f"{label} does not fit the feature table: {body}. Fix the rule or compute the "
            f"missing features.",
            expression=self.text,
            position=problems[0][0],
        )

    def evaluate(self, frame: pd.DataFrame, *, name: str | None = None) -> np.ndarray:
        """Check the rule against ``frame``, then return one boolean per row."""
        self.check(frame, name=name)
        return np.asarray(self.node.evaluate(frame), dtype=bool)

    def __str__(self) -> str:
        return str(self.node)
