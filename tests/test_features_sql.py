"""Tests for the portable SQL: dialect pieces and the subset the plan is allowed to use."""

from __future__ import annotations

import re

import duckdb
import pytest

from propensity.errors import ModelError
from propensity.features import DUCKDB, SPARK, FeatureSpec
from propensity.features.sql import build_plan

SPEC = FeatureSpec(
    families=(
        "counts",
        "recency",
        "activity",
        "timing",
        "order",
        "transitions",
        "diversity",
        "account",
        "fit",
        "properties",
    ),  # fmt: skip
    events=("a'b", "back\\slash", "login"),
    windows_s=(86400, 3 * 86400),
    session_gap_s=1800,
    key_events=("login",),
    milestones=(("login", "a'b", 3600),),
    transitions=(("login", "a'b"),),
    free_mail_domains=("gmail.com",),
    education_suffixes=(".edu",),
    numeric_user_columns=("seats",),
    categorical_user_columns=(("plan tier", ("free", "pro")),),
    properties=(("login", "n", ("sum", "mean")),),
)


@pytest.mark.parametrize("value", ["plain", "it's", "back\\slash", "''", "a\\'b", "x\ny"])
def test_duckdb_literal_round_trips(value: str) -> None:
    """Check that a DuckDB literal holds the value verbatim, quotes and backslashes included."""
    assert duckdb.connect().execute(f"SELECT {DUCKDB.literal(value)}").fetchone()[0] == value


def test_spark_literal_escapes_backslash_and_quote() -> None:
    """Check that Spark literals escape backslashes and quotes (Spark has no '' escape)."""
    assert SPARK.literal("it's") == "'it\\'s'"
    assert SPARK.literal("a\\b") == "'a\\\\b'"
    assert SPARK.quote("plan tier") == "`plan tier`"
    assert DUCKDB.quote('we"ird') == '"we""ird"'


@pytest.mark.parametrize("dialect", [DUCKDB, SPARK])
def test_plan_stays_in_the_portable_subset(dialect) -> None:  # type: ignore[no-untyped-def]
    """Check the generated SQL avoids constructs one of the engines lacks or runs differently."""
    plan = build_plan(SPEC, dialect, "input_rows", "_t_")
    text = "\n".join([*(s.sql for s in plan.steps), plan.final, plan.unseen])
    # Dialect-specific pieces are allowed only inside the Dialect's own expressions.
    text = text.replace(dialect.epoch_seconds("cutoff_at"), "EPOCH")
    text = text.replace(dialect.epoch_seconds("signup_at"), "EPOCH")
    text = text.replace(dialect.epoch_seconds("timestamp"), "EPOCH")
    text = text.replace(dialect.epoch_seconds("e.timestamp"), "EPOCH")
    for banned in (" FILTER", "QUALIFY", "//", "::", "ASOF", "list(", "mode(", "date_diff",
                   "epoch(", "arg_max", "first(", "ILIKE", "STRUCT"):  # fmt: skip
        assert banned.lower() not in text.lower(), banned
    # Every division is by a constant or NULLIF/GREATEST-guarded (Spark ANSI raises on / 0).
    for match in re.finditer(r"/\s*([^\s(]+)", text):
        operand = match.group(1)
        assert re.fullmatch(r"\d+(\.0)?", operand) or operand in ("NULLIF", "CAST"), operand


def test_spec_refuses_events_outside_the_vocabulary() -> None:
    """Check a hand-made spec naming an event outside its vocabulary is refused."""
    with pytest.raises(ModelError, match=r"events \['zzz'\] outside the vocabulary"):
        FeatureSpec(
            families=("timing",), events=("login",), windows_s=(86400,), session_gap_s=60,
            key_events=("zzz",),
        )  # fmt: skip


def test_event_name_slugs_are_unique() -> None:
    """Check sanitised names never collide, with each other or with reserved names."""
    spec = FeatureSpec(
        families=("counts",), events=("A b", "a-b", "event", "events"), windows_s=(86400,),
        session_gap_s=60, key_events=(),
    )  # fmt: skip
    assert spec.slugs == {"A b": "a_b", "a-b": "a_b_2", "event": "event_2", "events": "events_2"}
    assert len(set(spec.columns)) == len(spec.columns)
