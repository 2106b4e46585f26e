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
    shares = engine.member_shares(rows, model.spec)
    named = name_members(contributions, shares, list(range(len(pos))), k)
    named = pd.concat([named, _most_active(shares, named, len(pos), k)], ignore_index=True)
    lines = member_lines(named, shares, values[list(X.columns)], model.spec)
    text = pd.Series([lines[i] for i in range(len(pos))], index=flagged.index)
    out.loc[text.index, "members"] = text.to_numpy()
    return out


def _most_active(shares: pd.DataFrame, named: pd.DataFrame, n: int, k: int) -> pd.DataFrame:
    """For a PQL no member pushed up (its score rests on the account's own traits: size,
    domain, trend), the ``k`` members who made most of its events in the plan's longest window,
    so that every account PQL still names the users behind it."""
    events = sorted(f for f in shares["feature"].unique() if str(f).startswith("acct_events_"))
    missing = sorted(set(range(n)) - set(named["row"]))
    if not events or not missing:
        return named.iloc[0:0]
    longest = max(events, key=lambda f: int("".join(c for c in f if c.isdigit()) or 0))
    top = shares[(shares["feature"] == longest) & shares["row"].isin(missing)]
    top = top.sort_values(["row", "share", "user_id"], ascending=[True, False, True])
    top = top.groupby("row").head(k).copy()
    top["rank"] = top.groupby("row").cumcount() + 1
    top["contribution"] = np.nan
    top["reason"] = longest
    return top[["row", "rank", "user_id", "role", "contribution", "reason"]]
