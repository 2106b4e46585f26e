"""The score table: calibrated scores, PQL flags, reason codes, holdout, changes and roll-ups.

:func:`score_frame` turns a trained :class:`~propensity.model.PQLModel` and a feature frame into
the tables a sales team reads. It writes nothing; the pipeline hands the frames to ``io``.
Same inputs give identical frames: rows are sorted by score (descending) then ``user_id``, and
the holdout is chosen by a salted SHA-256 of the user id, never by Python's ``hash``.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import ScoringConfig
from propensity.contract import FEATURES, SCORES
from propensity.errors import DataContractError, PropensityWarning
from propensity.explain import reason_codes, reason_columns, shap_values, to_matrix
from propensity.model import PQLModel

__all__ = ["SCORE_COLUMNS", "ScoreResult", "holdout_mask", "score_frame", "weak_model"]

# Columns of the score table around the reason columns, in order.
_HEAD = list(SCORES.keys)
_TAIL = ["holdout", "new_pql", "dropped_pql", "model_name", "model_version", "run_id"]
_TAIL += ["as_of", "scored_at"]
SCORE_COLUMNS = (_HEAD, _TAIL)


@dataclass(frozen=True)
class ScoreResult:
    """``scores`` (one row per user), ``accounts`` roll-up, ``dropped`` PQLs and a ``summary``."""

    scores: pd.DataFrame
    accounts: pd.DataFrame
    dropped: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def score_frame(
    model: PQLModel,
    features: pd.DataFrame,
    accounts: pd.Series | None,
    cfg: ScoringConfig,
    model_info: Mapping[str, Any],
    as_of: Any,
    scored_at: Any,
    reference: Mapping[str, Any] | None = None,
    previous: pd.DataFrame | None = None,
    *,
    shap_method: str = "fast",
    n_threads: int = 2,
) -> ScoreResult:
    """Score every row of ``features`` (``user_id``, ``cutoff_at``, then feature columns).

    - ``accounts``: account id per row, aligned with ``features`` by index (None: no accounts).
    - ``model_info``: ``name``, ``version``, ``run_id`` written on every row.
    - ``reference``: :func:`propensity.explain.fit_reference` output for "top X% of trials";
      None falls back to ``model.metadata["reason_reference"]`` when present.
    - ``previous``: a previous run's score table (``user_id``, ``is_pql``, ``score``); users
      flagged then and not now are ``dropped_pql`` and listed in ``dropped``. Without it every
      PQL counts as new.

    Reason codes go to the PQLs plus the top ``cfg.explain_top_fraction`` of scores
    (``cfg.explain="pql_and_top"``), to every row (``"all"``) or to none; SHAP values are on
    the raw log-odds scale, of which the calibrated score is a monotone map.
    """
    start = time.perf_counter()
    _check_keys(features, accounts)
    weak = weak_model(model)
    if weak:
        warnings.warn(
            f"WEAK MODEL: this model is no better than chance or a rule on its test slice "
            f"({weak}). Do not act on its PQLs; retrain on more data or use the rule.",
            PropensityWarning,
            stacklevel=2,
        )
    X = model.prepare(features)
    matrix = to_matrix(X)
    _, score = model.predict_matrix(matrix, n_threads)
    is_pql = score >= model.threshold
    user_id = features["user_id"].astype(str).to_numpy()

    table = pd.DataFrame(
        {
            "user_id": user_id,
            "account_id": _accounts(accounts, features),
            "cutoff_at": features["cutoff_at"].to_numpy(),
            "score": score,
            "percentile": 100.0 * pd.Series(score).rank(method="max", pct=True).to_numpy(),
            "is_pql": is_pql,
            "threshold": float(model.threshold),
        }
    )

    explain = _explain_rows(score, user_id, is_pql, cfg)
    k = cfg.reason_codes
    reasons = pd.DataFrame(index=range(len(table)), columns=reason_columns(k))
    if k and explain.any():
        rows = np.flatnonzero(explain)
        spec = model.spec  # what each column means; unreadable: ModelError, exit 3
        phi = shap_values(model.booster, matrix[rows], shap_method, n_threads=n_threads)
        ref = reference if reference is not None else model.metadata.get("reason_reference")
        found = reason_codes(X.iloc[rows], phi[:, :-1], k, spec, ref)
        found.index = rows
        reasons = found.reindex(range(len(table)))
    table = pd.concat([table, reasons.astype(_reason_dtypes(k))], axis=1)

    table["holdout"] = holdout_mask(user_id, cfg.holdout_fraction, cfg.holdout_salt) & is_pql
    was_pql = _previous_pqls(previous)
    table["new_pql"] = is_pql & ~np.isin(user_id, list(was_pql))
    table["dropped_pql"] = ~is_pql & np.isin(user_id, list(was_pql))
    table["model_name"] = str(model_info.get("name", ""))
    table["model_version"] = str(model_info.get("version", ""))
    table["run_id"] = str(model_info.get("run_id", ""))
    table["as_of"] = pd.Timestamp(as_of)
    table["scored_at"] = pd.Timestamp(scored_at)
    table = table.sort_values(["score", "user_id"], ascending=[False, True], kind="stable")
    table = table.reset_index(drop=True)

    dropped = _dropped(previous, was_pql, table)
    rollup = _rollup(table) if cfg.account_rollup else _rollup(table.iloc[0:0])
    summary = {
        "users_scored": len(table),
        "pqls": int(table["is_pql"].sum()),
        "new_pqls": int(table["new_pql"].sum()),
        "dropped_pqls": len(dropped),
        "holdout": int(table["holdout"].sum()),
        "explained_rows": int(explain.sum()) if k else 0,
        "accounts": len(rollup),
        "seconds": round(time.perf_counter() - start, 3),
    }
    return ScoreResult(scores=table, accounts=rollup, dropped=dropped, summary=summary)


def weak_model(model: PQLModel) -> str:
    """Why ``model`` is too weak to act on (one line), from its training metadata; else empty.

    Training records the reason it refused to promote; a model trained before that rule is
    judged from its stored intervals (ROC AUC including 0.5, lift including 1).
    """
    meta = model.metadata
    if meta.get("weakness"):
        return str(meta["weakness"])
    metrics = meta.get("metrics", {})
    auc_low = metrics.get("test_calibrated.roc_auc_ci_low", math.inf)
    lift_low = metrics.get("threshold.lift_ci_low", math.inf)
    if auc_low <= 0.5:
        return f"the 95% interval of ROC AUC starts at {auc_low:.3f}, i.e. includes chance (0.5)"
    if lift_low <= 1.0:
        return f"the 95% interval of the lift starts at {lift_low:.2f}x, i.e. includes 1"
    return ""


def holdout_mask(user_ids: Any, fraction: float, salt: str) -> np.ndarray:
    """Deterministic pseudo-random subset: SHA-256 of ``salt:user_id`` below ``fraction``.

    The same salt always picks the same users, whatever the row order or the process.

    >>> holdout_mask(["u1", "u2"], 0.0, "s").tolist()
    [False, False]
    """
    ids = [str(u) for u in user_ids]
    if fraction <= 0:
        return np.zeros(len(ids), dtype=bool)
    limit = fraction * 2.0**64
    return np.array(
        [
            int.from_bytes(hashlib.sha256(f"{salt}:{u}".encode()).digest()[:8], "big") < limit
            for u in ids
        ],
        dtype=bool,
    )


def _explain_rows(
    score: np.ndarray, user_id: np.ndarray, is_pql: np.ndarray, cfg: ScoringConfig
) -> np.ndarray:
    n = len(score)
    if cfg.explain == "none" or cfg.reason_codes == 0:
        return np.zeros(n, dtype=bool)
    if cfg.explain == "all":
        return np.ones(n, dtype=bool)
    top = np.zeros(n, dtype=bool)
    count = math.ceil(cfg.explain_top_fraction * n)
    if count:
        # the same order as the table (score desc, user id asc), so ties break the same way
        order = np.lexsort((user_id, -score))
        top[order[:count]] = True
    return top | is_pql


def _reason_dtypes(k: int) -> dict[str, str]:
    return {c: ("float64" if c.endswith("_shap") else "object") for c in reason_columns(k)}


def _check_keys(features: pd.DataFrame, accounts: pd.Series | None) -> None:
    """The feature table to score (one row per user, no email ids) and its accounts, checked
    lazily: one error naming every problem, carrying the failing rows."""
    problems: list[str] = []
    failing = features.iloc[0:0]
    try:
        FEATURES.validate(features, one_row_per="user_id", no_email=("user_id",))
    except DataContractError as exc:
        problems += exc.problems
        failing = exc.failure_cases if exc.failure_cases is not None else failing
    if accounts is not None and accounts.astype(str).str.contains("@", regex=False).any():
        problems.append(
            "account_id must not contain an email address. Got ids containing '@'; map "
            "accounts to a non-email id before scoring."
        )
    if accounts is not None and not accounts.index.equals(features.index):
        problems.append(
            "accounts must be aligned with the feature table by index. Got a different index; "
            "pass label_times['account_id'] with the same index as the features."
        )
    if problems:
        raise DataContractError(problems, failure_cases=failing)


def _accounts(accounts: pd.Series | None, features: pd.DataFrame) -> np.ndarray:
    if accounts is None:
        return np.full(len(features), None, dtype=object)
    return (
        accounts.astype(object)
        .where(accounts.notna(), None)
        .map(lambda a: None if a is None else str(a))
        .to_numpy(dtype=object)
    )


def _previous_pqls(previous: pd.DataFrame | None) -> set[str]:
    if previous is None:
        return set()
    missing = [c for c in ("user_id", "is_pql") if c not in previous.columns]
    if missing:
        raise DataContractError(
            [
                f"The previous score table must have columns user_id and is_pql. Got it without "
                f"{', '.join(missing)}; pass the scores file of an earlier 'propensity score' run."
            ]
        )
    flagged = previous.loc[previous["is_pql"].astype(bool), "user_id"]
    return set(flagged.astype(str))


def _dropped(previous: pd.DataFrame | None, was_pql: set[str], table: pd.DataFrame) -> pd.DataFrame:
    """Users flagged by the previous run and not now, whether still scored or gone."""
    columns = ["user_id", "previous_score", "score", "reason"]
    if previous is None or not was_pql:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns}).astype(
            {"previous_score": "float64", "score": "float64"}
        )
    prev = previous.assign(user_id=previous["user_id"].astype(str))
    prev = prev[prev["user_id"].isin(was_pql)].drop_duplicates("user_id")
    now = table.set_index("user_id")
    still = prev["user_id"].isin(now.index)
    current = now["score"].reindex(prev["user_id"]).to_numpy()
    flagged_now = prev["user_id"].isin(now.index[now["is_pql"].to_numpy(dtype=bool)]).to_numpy()
    out = pd.DataFrame(
        {
            "user_id": prev["user_id"].to_numpy(),
            "previous_score": (
                prev["score"].astype("float64").to_numpy() if "score" in prev else np.nan
            ),
            "score": current,
            "reason": np.where(still.to_numpy(), "below_threshold", "not_scored"),
        }
    )
    out = out[~flagged_now]
    return out.sort_values("user_id", kind="stable").reset_index(drop=True)


def _rollup(table: pd.DataFrame, top_users: int = 3) -> pd.DataFrame:
    """Per account: users, max/mean score, PQL users and the top users behind the score."""
    with_account = table[table["account_id"].notna()]
    columns = ["account_id", "users", "max_score", "mean_score", "pql_users", "top_users"]
    if with_account.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    grouped = with_account.groupby("account_id", sort=False)
    out = grouped.agg(
        users=("user_id", "size"),
        max_score=("score", "max"),
        mean_score=("score", "mean"),
        pql_users=("is_pql", "sum"),
    )
    # the table is already sorted by score desc, user id asc: head() keeps the top users
    top = with_account.groupby("account_id", sort=False).head(top_users)
    out["top_users"] = top.groupby("account_id", sort=False)["user_id"].agg(",".join)
    out = out.reset_index()
    out["pql_users"] = out["pql_users"].astype("int64")
    out = out.sort_values(["max_score", "account_id"], ascending=[False, True], kind="stable")
    return out[columns].reset_index(drop=True)
