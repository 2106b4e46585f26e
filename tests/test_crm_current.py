"""Tests of the CRM current and history tables (propensity.crm.current, history, presets, run)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from propensity.config import CrmConfig, ScoringConfig
from propensity.crm import crm_fields, external_id
from propensity.crm.run import crm_step, empty_current

T0 = datetime(2025, 3, 3)
NOCONV = pd.DataFrame(
    {"entity_id": pd.Series(dtype=object), "converted_at": pd.Series(dtype="M8[ns]")}
)
CFG = CrmConfig.model_validate({"lifecycle": {"min_pql_time": "0d", "cooldown": "0d"}})


def _scores(values, text="x"):
    n = len(values)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "account_id": [f"a{i % 2}" for i in range(n)],
            "score": values,
            "percentile": 100 * pd.Series(values).rank(pct=True),
            "reason_1_text": [text] * n,
            "reason_2_text": [None] * n,
        }
    )


def _step(previous, scores, day):
    seg = pd.DataFrame({"entity_id": scores["user_id"]})
    return crm_step(
        previous, scores, T0 + timedelta(days=day), NOCONV, seg, CFG, ScoringConfig(), 0.5, "3"
    )


def test_current_key_rounding_and_reasons():
    """Check that the key is unique and non-null, scores rounded, reasons at most 255 chars."""
    out = _step(empty_current(), _scores([0.91234, 0.2, 0.6], text="r" * 400), 0).current
    assert out["entity_id"].notna().all() and out["entity_id"].is_unique
    assert out["score"].tolist() == [0.91, 0.2, 0.6]
    assert out["reason_1"].str.len().max() == 255 and out["reason_2"].isna().all()
    assert out["is_pql"].tolist() == [True, False, True]


def test_sync_sees_only_real_changes():
    """Check that updated_at moves only for rows whose rounded values changed, and
    status_changed_at only when the flag flipped."""
    first = _step(empty_current(), _scores([0.9, 0.2, 0.6]), 0).current
    second = _step(first, _scores([0.9001, 0.2004, 0.7]), 1).current.set_index("entity_id")
    assert second.loc["u0", "updated_at"] == pd.Timestamp(T0)  # 0.9001 rounds to 0.9
    assert second.loc["u1", "updated_at"] == pd.Timestamp(T0)
    assert second.loc["u2", "updated_at"] == pd.Timestamp(T0 + timedelta(days=1))
    assert second.loc["u2", "status_changed_at"] == pd.Timestamp(T0)  # still a PQL: no flip


def test_history_rows_and_unscored_entities():
    """Check that history has one row per entity scored or flipped, and a PQL no longer
    scored stays in the current table as expired."""
    first = _step(empty_current(), _scores([0.9, 0.2]), 0)
    assert first.history["entity_id"].tolist() == ["u0", "u1"]
    second = _step(first.current, _scores([0.3]).assign(user_id=["u1"]), 1)
    cur = second.current.set_index("entity_id")
    assert cur.loc["u0", "status"] == "expired" and not cur.loc["u0", "is_pql"]
    assert cur.loc["u0", "score"] == 0.9  # the last score, unchanged
    assert sorted(second.history["entity_id"]) == ["u0", "u1"]
    assert not second.history.duplicated(["entity_id", "as_of", "model_version"]).any()


def test_presets_rename_for_bulk_upserts():
    """Check that the Salesforce and HubSpot presets name the external id and ISO timestamps."""
    cur = _step(empty_current(), _scores([0.9, 0.2]), 0).current
    sf = crm_fields(cur, "salesforce")
    assert external_id("salesforce") in sf.columns and "PQL_Score__c" in sf.columns
    assert sf["PQL_Since__c"].iloc[0] == "2025-03-03T00:00:00Z"
    assert sf["PQL_Since__c"].iloc[1] is None
    hs = crm_fields(cur, "hubspot")
    assert external_id("hubspot") == "propensity_external_id" and "pql_score" in hs.columns
    assert np.array_equal(crm_fields(cur, "generic").columns, cur.columns)
