"""Tests for propensity.baselines.grammar: parsing, checking and evaluating rule expressions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propensity.baselines.grammar import (
    MAX_DEPTH,
    And,
    Compare,
    Feature,
    IsIn,
    IsMissing,
    Not,
    Or,
    Rule,
    RuleError,
)
from propensity.errors import ConfigError, PropensityWarning


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_teammate_invited_all": [0.0, 3.0, 5.0, np.nan],
            "n_message_sent_all": [100.0, 10.0, 60.0, 80.0],
            "active_days": [1, 4, 6, 2],
            "domain_class": pd.Categorical(
                ["corporate", "free_mail", None, "enterprise"],
                categories=["free_mail", "corporate", "enterprise", "education", "unknown"],
            ),
        }
    )


def _eval(text: str, frame: pd.DataFrame) -> list[bool]:
    return Rule.parse(text).evaluate(frame).tolist()


def test_and_binds_tighter_than_or():
    """Check that `a or b and c` parses as `a or (b and c)`."""
    a, b, c = (Compare(Feature(n), ">", 1.0) for n in "abc")
    assert Rule.parse("a > 1 or b > 1 and c > 1").node == Or((a, And((b, c))))
    assert Rule.parse("(a > 1 or b > 1) and c > 1").node == And((Or((a, b)), c))


def test_not_binds_tighter_than_and():
    """Check that `not a and b` parses as `(not a) and b`, and chains stay flat."""
    a, b = Compare(Feature("a"), ">", 1.0), Compare(Feature("b"), "<=", -2.5)
    assert Rule.parse("NOT a > 1 AND b <= -2.5").node == And((Not(a), b))
    assert Rule.parse("not (a > 1 and b <= -2.5)").node == Not(And((a, b)))
    assert Rule.parse("a > 1 and b <= -2.5 and a > 1").node == And((a, b, a))


def test_precedence_on_data(frame):
    """Check that precedence and parentheses change which rows are flagged, as hand-computed."""
    # rows: invited 0/3/5/NaN, messages 100/10/60/80
    loose = "n_teammate_invited_all >= 3 or n_message_sent_all >= 50 and active_days >= 4"
    tight = "(n_teammate_invited_all >= 3 or n_message_sent_all >= 50) and active_days >= 4"
    assert _eval(loose, frame) == [False, True, True, False]
    assert _eval(tight, frame) == [False, True, True, False]
    assert _eval("n_teammate_invited_all >= 3 or n_message_sent_all >= 50", frame) == [
        True,
        True,
        True,
        True,
    ]
    assert _eval("not n_teammate_invited_all >= 3 and active_days < 4", frame) == [
        True,
        False,
        False,
        True,
    ]


def test_comparisons_and_missing_compare_false(frame):
    """Check every comparison operator, with a missing value false under each one (even !=)."""
    assert _eval("n_teammate_invited_all < 3", frame) == [True, False, False, False]
    assert _eval("n_teammate_invited_all <= 3", frame) == [True, True, False, False]
    assert _eval("n_teammate_invited_all > 3", frame) == [False, False, True, False]
    assert _eval("n_teammate_invited_all == 3", frame) == [False, True, False, False]
    assert _eval("n_teammate_invited_all != 3", frame) == [True, False, True, False]
    assert _eval("n_teammate_invited_all < n_message_sent_all", frame) == [True, True, True, False]
    # `not` flips the computed value, so a missing row becomes true
    assert _eval("not n_teammate_invited_all > 3", frame) == [True, True, False, True]


def test_categorical_equality_and_in(frame):
    """Check quoted text equality, `in` and `not in` on a categorical, missing rows false."""
    assert _eval("domain_class == 'corporate'", frame) == [True, False, False, False]
    assert _eval('domain_class != "corporate"', frame) == [False, True, False, True]
    assert _eval("domain_class in ('corporate', 'enterprise')", frame) == [
        True,
        False,
        False,
        True,
    ]
    assert _eval("domain_class not in ('corporate','enterprise')", frame) == [
        False,
        True,
        False,
        False,
    ]
    assert _eval("active_days in (1, 6)", frame) == [True, False, True, False]
    node = Rule.parse("domain_class not in ('a', 'b')").node
    assert node == IsIn(Feature("domain_class"), ("a", "b"), negated=True)


def test_is_missing(frame):
    """Check `is missing` and `is not missing` on numbers and categoricals."""
    assert _eval("n_teammate_invited_all is missing", frame) == [False, False, False, True]
    assert _eval("domain_class IS NOT MISSING", frame) == [True, True, False, True]
    assert Rule.parse("x is not missing").node == IsMissing(Feature("x"), negated=True)


def test_features_in_order_of_appearance():
    """Check that a rule lists the features it reads once each, in order."""
    rule = Rule.parse("b > 1 and (a is missing or b < a) and c in ('x')")
    assert rule.features == ("b", "a", "c")


@pytest.mark.parametrize(
    "text",
    [
        "a > 1 or b > 2 and c == 'x'",
        "(a > 1 or b > 2) and not (c in ('x', 'y') or d is missing)",
        "not not a >= -1.5",
        "a != b",
    ],
)
def test_printing_round_trips(text):
    """Check that printing a parsed rule gives text that parses to the same tree."""
    node = Rule.parse(text).node
    assert Rule.parse(str(node)).node == node


@pytest.mark.parametrize(
    ("text", "position", "match"),
    [
        (
            "a >",
            3,
            r"position 3, expected a number, a quoted text or a feature name, found the end",
        ),
        ("a > 1)", 5, r"position 5, expected 'and', 'or', '\)' or the end of the rule, found '\)'"),
        ("(a > 1", 6, r"position 6, expected '\)' to close the parenthesis"),
        ("a = 1", 2, r"position 2, unexpected character '='; use '==' to test equality"),
        ("a > 1 && b > 2", 6, r"unexpected character '&'; use 'and'"),
        ("", 0, r"position 0, expected a rule such as"),
        ("a > 1 and", 9, r"position 9, expected a feature name, 'not' or '\(', found the end"),
        ("a in ()", 6, r"position 6, expected a number"),
        ("a in 'x'", 5, r"position 5, expected '\(' to start the list of values"),
        ("a is nothing", 5, r"expected 'missing' after 'is', found 'nothing'"),
        ("a not > 1", 6, r"expected 'in' after 'a'"),
        ("a", 1, r"expected a comparison \(< <= > >= == !=\), 'in' or 'is missing' after 'a'"),
        ("3 < a", 0, r"expected a feature name, 'not' or '\(', found '3'"),
        ("a > 7d", 4, r"a number must not run into letters"),
        ("a == 'open", 5, r"unexpected character \"'\"; close the quoted string"),
        ("a > - 'x'", 6, r"expected a number, found"),
    ],
)
def test_syntax_errors_name_position_and_expectation(text, position, match):
    """Check that a syntax error names its position and what was expected there."""
    with pytest.raises(RuleError, match=match) as info:
        Rule.parse(text)
    assert info.value.position == position
    assert info.value.expression == text
    assert isinstance(info.value, ConfigError)  # the CLI maps it to exit code 2


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("__import__('os').system('rm -rf /')", 16),  # the '.' is not in the language at all
        ("__import__('os')", 10),  # a name must be followed by a comparison, never a call
        ("a > 1 or exec('print(1)')", 13),
        ("a.__class__ == 1", 1),
        ("a > 1; import os", 5),
        ("lambda: 1", 6),
    ],
)
def test_code_injection_is_a_parse_error(text, position):
    """Check that Python code in a rule is rejected as a syntax error, never run."""
    with pytest.raises(RuleError, match="Cannot parse rule") as info:
        Rule.parse(text)
    assert info.value.position == position


def test_nesting_limit_is_a_parse_error():
    """Check that absurdly deep nesting is a clean error rather than a RecursionError."""
    Rule.parse("(" * MAX_DEPTH + "a > 1" + ")" * MAX_DEPTH)
    with pytest.raises(RuleError, match=f"more than {MAX_DEPTH} levels"):
        Rule.parse("(" * 1_000 + "a > 1" + ")" * 1_000)
    with pytest.raises(RuleError, match=f"more than {MAX_DEPTH} levels"):
        Rule.parse("not " * 1_000 + "a > 1")
    long_chain = " and ".join(["a > 1"] * 5_000)  # flat chains are fine at any length
    assert Rule.parse(long_chain).evaluate(pd.DataFrame({"a": [2.0]})).tolist() == [True]


def test_unknown_feature_suggests_close_names(frame):
    """Check that an unknown feature is named, with its position and the closest real names."""
    rule = Rule.parse("active_days >= 2 and n_teamate_invited_all >= 3")
    with pytest.raises(RuleError, match="unknown feature 'n_teamate_invited_all'") as info:
        rule.check(frame, name="invites")
    message = str(info.value)
    assert "did you mean 'n_teammate_invited_all'?" in message
    assert message.startswith("Rule 'invites'")
    assert info.value.position == 21


def test_every_problem_is_reported_at_once(frame):
    """Check that all unknown features are listed in one error, not one per attempt."""
    with pytest.raises(RuleError) as info:
        Rule.parse("foo > 1 or bar > 2").check(frame)
    assert "unknown feature 'foo'" in str(info.value)
    assert "unknown feature 'bar'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("active_days == 'x'", r"numeric feature 'active_days' is compared with text 'x'"),
        ("domain_class == 3", r"text feature 'domain_class' is compared with the number 3"),
        ("domain_class > 'corporate'", r"orders text; text features allow only == and !="),
        ("domain_class == active_days", r"compares a text feature with a number feature"),
    ],
)
def test_type_mismatches_are_rule_errors(frame, text, match):
    """Check that comparing numbers with text (or ordering text) is a clear error."""
    with pytest.raises(RuleError, match=match):
        Rule.parse(text).check(frame)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("domain_class == 'corprate'", r"'corprate' is not a level of 'domain_class' seen in "),
        ("domain_class in ('corporate', 'edu')", r"'edu' is not a level"),
    ],
)
def test_unseen_category_level_is_false_with_a_warning(frame, text, match):
    """Check that a level unseen in training is allowed: a warning, and never true."""
    rule = Rule.parse(text)
    with pytest.warns(PropensityWarning, match=match) as caught:
        rule.check(frame, warn=True)
    assert "did you mean 'corporate'?" in str(caught[0].message) or "'edu'" in text
    expected = [row == "corporate" and "corporate" in text for row in frame["domain_class"]]
    assert rule.evaluate(frame).tolist() == expected
    rule.check(frame)  # without warn: silent (evaluation never warns per call)


def test_non_text_rule_is_rejected():
    """Check that a rule that is not a string is a RuleError, not a TypeError."""
    with pytest.raises(RuleError, match="A rule must be text"):
        Rule.parse(3)  # type: ignore[arg-type]


_PIECES = st.sampled_from(
    [
        "a",
        "b",
        "x1",
        "and",
        "or",
        "not",
        "in",
        "is",
        "missing",
        "(",
        ")",
        ",",
        "-",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "=",
        "3",
        "0.5",
        "1e3",
        "'t'",
        '"u"',
        "'",
        " ",
        "__import__",
        ".",
        "[",
        "!",
        "&",
        "\t",
        "é",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40))
def test_random_text_parses_or_raises_rule_error(text):
    """Check that arbitrary text either parses or raises RuleError, never anything else."""
    try:
        Rule.parse(text)
    except RuleError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(_PIECES, max_size=25).map(" ".join))
def test_random_token_soup_parses_evaluates_or_raises_rule_error(text):
    """Check that token soup parses (and then evaluates) or raises RuleError, nothing else."""
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [2.0, 0.0], "x1": ["t", None]})
    try:
        rule = Rule.parse(text)
        result = rule.evaluate(frame)
    except RuleError:
        return
    assert result.dtype == bool and result.shape == (2,)
