"""Account tasks in the score job: the score table keyed on ``account_id``, and every account
PQL carrying the users behind it in words (docs/tasks.md, "Accounts, wired").

The account's SHAP contributions split onto its members by their shares of each feature
(``explain.members``); the top ``scoring.reason_codes`` members with a positive contribution are
named by id and role only (no email or name leaves the job), each with what it did, then the
account line ("4 teammates active in the last 7d").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from propensity.config import TaskConfig
from propensity.explain import shap_values, to_matrix
from propensity.explain.members import member_lines, name_members
from propensity.labels import LabelTimes

__all__ = ["account_scores", "is_account_task"]


def is_account_task(task: TaskConfig | None) -> bool:
    """Whether the entity scored is an account."""
    return task is not None and task.entity == "account"


def account_scores(
    engine: Any, population: LabelTimes, features: pd.DataFrame, model: Any, scores: pd.DataFrame,
    k: int,
) -> pd.DataFrame:  # fmt: skip
    """``scores`` keyed on ``account_id`` (the entity key, no ``user_id``) with ``members``: for
    each PQL, its top ``k`` members and why, in words (None for the other rows).

    ``features`` is the feature table of ``population`` (same order; ``user_id`` = account).
    """
    out = scores.drop(columns=["user_id"]).copy()
    out["account_id"] = scores["user_id"].to_numpy()
    out.insert(out.columns.get_loc("is_pql") + 1, "members", pd.Series(None, dtype=object))
    flagged = scores.loc[scores["is_pql"].to_numpy(dtype=bool), "user_id"].astype(str)
    if k == 0 or flagged.empty:
        return out
    where = pd.Series(np.arange(len(features)), index=features["user_id"].astype(str))
    pos = where.loc[flagged.to_numpy()].to_numpy()
    rows = LabelTimes(
        population.frame.iloc[pos].reset_index(drop=True), population.excluded, population.settings
    )
    values = features.iloc[pos].reset_index(drop=True)
    X = model.prepare(values)
    phi = shap_values(model.booster, to_matrix(X))[:, :-1]
    contributions = pd.DataFrame(phi, columns=list(X.columns))
    shares = engine.member_shares(rows)
    named = name_members(contributions, shares, list(range(len(pos))), k)
    lines = member_lines(named, shares, values[list(X.columns)], model.spec)
    text = pd.Series([lines[i] for i in range(len(pos))], index=flagged.index)
    out.loc[text.index, "members"] = text.to_numpy()
    return out
