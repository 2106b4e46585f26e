"""Tests of the feature glossary: every column has a meaning, and docs/features.md is in sync."""

from __future__ import annotations

from pathlib import Path

from propensity.features import FeatureSpec
from propensity.features.glossary import GLOSSARY, markdown, meaning
from propensity.features.spec import FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def _full_spec() -> FeatureSpec:
    return FeatureSpec(
        families=FAMILIES,
        events=("doc_shared", "login"),
        windows_s=(86_400, 7 * 86_400),
        session_gap_s=1800,
        key_events=("doc_shared",),
        milestones=(("login", "doc_shared", 48 * 3600),),
        transitions=(("login", "doc_shared"),),
        numeric_user_columns=("company_size",),
        categorical_user_columns=(("role", ("engineer",)),),
        properties=(("doc_shared", "size", ("sum", "max")),),
        lag_window_s=28 * 86_400,
        lags_s=(0, 7 * 86_400),
        lag_recent_s=7 * 86_400,
    )


def test_every_column_kind_has_a_filled_in_meaning():
    """Check that each column of a spec using every family gets a meaning, placeholders filled."""
    spec = _full_spec()
    kinds = {(e.family, e.kind) for e in GLOSSARY}
    for info in spec.features:
        assert (info.family, info.kind) in kinds, info
        text = meaning(info)
        assert text != info.name and "<" not in text and "{" not in text, (info.name, text)
    by_name = {f.name: meaning(f) for f in spec.features}
    assert by_name["n_doc_shared_7d"] == "times 'doc_shared' happened in the 7d before the cutoff"
    assert by_name["n_events_all"] == "events of any vocabulary type since signup"
    assert by_name["within_login_then_doc_shared_2d"] == (
        "1 when the first 'doc_shared' followed the first 'login' within 2d"
    )
    assert by_name["prop_doc_shared_size_max"] == (
        "max of the numeric property 'size' of 'doc_shared' since signup"
    )
    assert "never a reason code" in by_name["cutoff_age_days"]
    assert by_name["lag7d_login_28d"] == (
        "times 'login' happened in the 28d that end 7d before the cutoff"
    )
    assert by_name["lag0d_trend_7d_28d"].startswith("ln(1 + events in the last 7d of that window)")


def test_docs_features_md_is_generated_from_the_glossary():
    """Check docs/features.md equals the glossary's page (regenerate it when this fails)."""
    page = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert page == markdown(), (
        "docs/features.md is stale: run python -m propensity.features.glossary > docs/features.md"
    )
    for entry in GLOSSARY:
        assert f"| `{entry.name}` |" in page
