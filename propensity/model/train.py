"""Fit the PQL model: LightGBM on the train slice, early stopping (and, when the config sets no
LightGBM setting, a seeded search) on validation, a calibrator on out-of-sample scores (the
calibration slice, plus cross-fitted out-of-fold scores of the train slice when the calibration
slice has fewer than ``CROSS_FIT_BELOW_POSITIVES`` positives), threshold and honest
metrics on the untouched test slice, computed through the model's own predict path.

Class imbalance is left alone on purpose: no ``scale_pos_weight``, no ``is_unbalance``. Gradient
boosting on log loss ranks rare positives well without reweighting, and reweighting would push
the raw scores far from probabilities, leaving the calibration slice (the smallest one) to undo a
large distortion. Unweighted raw scores are already close to calibrated, so the calibrator only
has to make a small correction, and is kept only when it beats the raw scores on held-out folds.

The threshold is chosen on the test slice (the period whose weekly volume the policy speaks of)
and reported on it too, so for the ``capacity`` and ``precision`` policies the reported precision
at the threshold is slightly optimistic; ranking and calibration metrics are not affected.
The search's trials are cheap and their cost is bounded whatever the data's size (learning rate
0.1, user samples of at most ``SEARCH_MAX_ROWS`` train and validation rows, binned once) and
the winner is refit at the configured rate on every row; unless ``model.search.trials`` is
set, it runs only up to ``model.search.auto_max_rows`` train rows: its cost is fixed while
what it buys falls as the data grows (docs/config.md). The search has no time limit unless
``model.search.time_budget_s`` sets one, because a search cut short by time depends on machine
speed and load (on a 45k-user world at load 10 a 300 s budget most likely stopped it after 11
of 17 trials and another model came out); a budget that cuts it short warns, and
``metrics["search"]`` records the trials planned and run.

>>> result = fit_model(frame, cols, cats, cfg, spec_dict, spec_hash)  # doctest: +SKIP
>>> result.metrics["test_calibrated"]["roc_auc"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from propensity.config import Config, ModelConfig
from propensity.contract import TRAINING
from propensity.errors import InsufficientDataError
from propensity.evaluate import bootstrap_roc_auc, ranking_metrics, reliability_curve
from propensity.model.boost import Columns
from propensity.model.bundle import PQLModel, feature_matrix
from propensity.model.calibrate import fit_calibrator
from propensity.model.search import fit_searched
from propensity.model.split import SLICES, Split, split_out_of_time
from propensity.model.threshold import ThresholdPolicy, threshold_report

__all__ = [
    "CROSS_FIT_BELOW_POSITIVES",
    "MIN_EVAL_PER_CLASS",
    "TrainingResult",
    "fit_model",
    "scalar_metrics",
]

# Validation, calibration and test each need this many of both classes to mean anything.
MIN_EVAL_PER_CLASS = 5

# The calibrator is fitted on the calibration slice alone when that slice has at least this
# many positives (one row per user, as ``report_rows`` counts them); below it, cross-fitted
# out-of-fold scores of the train slice are added, at the cost of 5 more LightGBM fits. The
# cross-fitting exists because calibrators fitted on a few hundred positives were noisier than
# the raw scores; with thousands of positives the calibration slice is enough on its own, and
# it is the closer period to the one scored. On 1M users it saves ~4 full fits.
CROSS_FIT_BELOW_POSITIVES = 1000


@dataclass(frozen=True)
class TrainingResult:
    """Everything a training run produced; ``model`` is ready to save."""

    model: PQLModel
    split: Split
    metrics: dict[str, Any]
    test_frame: pd.DataFrame  # user_id, cutoff_at, label, p_raw, p
    best_iteration: int
    params: dict[str, Any]
    search: list[dict[str, Any]] = field(default_factory=list)


def fit_model(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    categorical: Mapping[str, Sequence[str]] | Sequence[str],
    cfg: Config,
    feature_spec: dict[str, Any],
    feature_spec_hash: str,
    report_rows: np.ndarray | None = None,
    split: Split | None = None,
) -> TrainingResult:
    """Train, calibrate and threshold a PQL model on a labelled feature table.

    ``categorical`` maps each categorical column to its levels; a plain list of names takes the
    levels from the frame (its pandas categories, else the sorted distinct values).

    ``report_rows`` (a boolean mask over ``frame``) picks the test rows that every reported
    number, the threshold and ``test_frame`` use. With several cutoffs per user, pass the main
    cutoff's rows: one row per user keeps PQLs per week a count of people. Trees, early stopping
    and calibration still use every row, since scoring meets users at every trial age.

    ``split`` is the out-of-time split of ``frame`` already made (``prepare`` made it to learn
    the spec on the training slice); without it the split is made here, the same way.
    """
    feature_columns = list(feature_columns)
    _check_frame(frame, feature_columns)
    levels = _levels(frame, categorical)
    split = split if split is not None else split_out_of_time(frame, cfg.split)
    y = frame["label"].to_numpy(dtype=float)
    counted = (
        np.ones(len(frame), dtype=bool) if report_rows is None else np.asarray(report_rows, bool)
    )
    _check_counts(split, y, counted, cfg.model)

    # encode slice by slice, column by column, into the float matrices LightGBM reads: one
    # copy of the features in total (the test slice is encoded below, its counted rows only)
    columns = Columns(feature_columns, levels)
    parts = {
        name: (
            feature_matrix(frame, feature_columns, levels, rows=split.positions(name)),
            y[split.positions(name)],
        )
        for name in SLICES[:3]
    }
    users = frame["user_id"].to_numpy()[split.train]
    valid_users = frame["user_id"].to_numpy()[split.validation]
    booster, params, best_iteration, trials, p_valid = fit_searched(
        parts, cfg, columns, users, valid_users
    )
    planned = cfg.model.search_trials(train_rows=split.train.size)

    # The calibrator learns from scores the model did not train on, every trial age (score
    # meets them all): the calibration slice, plus, when that slice is small, cross-fitted
    # out-of-fold scores of the train slice. Auto keeps a map only when it beats the raw scores
    # on held-out folds.
    p_fit, y_fit = booster.predict(parts["calibration"][0]), parts["calibration"][1]
    cal_positions = split.calibration
    cal_positives = int(y[cal_positions[counted[cal_positions]]].sum())
    cross_fitted = cal_positives < CROSS_FIT_BELOW_POSITIVES
    if cross_fitted:
        oof = _out_of_fold(params, parts["train"], columns, users, best_iteration, cfg.seed)
        p_fit, y_fit = np.r_[oof, p_fit], np.r_[parts["train"][1], y_fit]
    calibrator = fit_calibrator(p_fit, y_fit, cfg.calibration, seed=cfg.seed)
    train_start, train_end = split.ranges["train"]
    model = PQLModel(
        booster=booster,
        calibrator=calibrator,
        threshold=0.5,  # replaced below, once chosen on what the model writes
        feature_columns=feature_columns,
        categorical=levels,
        feature_spec=feature_spec,
        feature_spec_hash=feature_spec_hash,
    )
    # Every reported number is computed on what `score` writes: the model's own predict path
    # for a matrix (the score job's; its frame path converts to the same matrix).
    # (the keys and the feature columns of the test rows are taken apart: a row take of the
    # whole frame would copy every column once more)
    test_positions = split.test[counted[split.test]]
    test_rows = frame[["user_id", "cutoff_at", "label"]].iloc[test_positions]
    y_test = y[test_positions]
    p_raw_test, p_test = model.predict_matrix(
        feature_matrix(frame, feature_columns, levels, rows=test_positions), cfg.model.n_jobs
    )
    weeks = split.weeks("test")
    policy = ThresholdPolicy(cfg=cfg.threshold, weeks=weeks).fit(p_test, y_test)
    choice = policy.choice_
    model.threshold = policy.threshold_
    bins = cfg.calibration.ece_bins
    metrics: dict[str, Any] = {
        "split": split.summary(frame),
        "test_slice": {"rows": int(y_test.size), "positives": int(y_test.sum())},
        "validation": {
            "average_precision": float(average_precision_score(parts["validation"][1], p_valid))
        },
        "test_raw": ranking_metrics(y_test, p_raw_test, bins),
        "test_calibrated": ranking_metrics(y_test, p_test, bins),
        "test_calibrated_ci": {
            "roc_auc": list(bootstrap_roc_auc(y_test, p_test, cfg.threshold.bootstrap, cfg.seed))
        },
        "reliability_raw": reliability_curve(y_test, p_raw_test, bins).to_dict("list"),
        "reliability_calibrated": reliability_curve(y_test, p_test, bins).to_dict("list"),
        "calibration": {
            "method": calibrator.method_,
            "note": calibrator.note_,
            "rows": int(y_fit.size),
            "positives": int(y_fit.sum()),
            "cross_fitted": cross_fitted,
            "held_out_log_loss": dict(calibrator.cv_log_loss_),
        },
        "search": {"trials_planned": planned + 1 if planned else 1, "trials_run": len(trials)},
        "threshold": {
            **choice.to_dict(),
            **threshold_report(
                y_test, p_test, choice.threshold, weeks, cfg.threshold.bootstrap, cfg.seed
            ),
        },
    }
    model.metadata.update(
        {
            "training_window": [train_start.isoformat(), train_end.isoformat()],
            "best_iteration": best_iteration,
            "params": params,
            "metrics": scalar_metrics(metrics),
            "threshold_policy": choice.to_dict(),
        }
    )
    test_frame = pd.DataFrame(
        {
            "user_id": test_rows["user_id"].to_numpy(),
            "cutoff_at": test_rows["cutoff_at"].to_numpy(),
            "label": test_rows["label"].to_numpy(dtype=int),
            "p_raw": p_raw_test,
            "p": p_test,
        }
    )
    return TrainingResult(model, split, metrics, test_frame, best_iteration, params, trials)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric leaves of a metrics dict as ``section.name`` -> float (for tracking)."""
    out: dict[str, float] = {}
    for key, value in metrics.get("test_slice", {}).items():
        out[f"test_slice.{key}"] = float(value)
    for key, (low, high) in metrics.get("test_calibrated_ci", {}).items():
        out[f"test_calibrated.{key}_ci_low"] = float(low)
        out[f"test_calibrated.{key}_ci_high"] = float(high)
    for section in ("validation", "test_raw", "test_calibrated"):
        for key, value in metrics[section].items():
            out[f"{section}.{key}"] = float(value)
    threshold = metrics["threshold"]
    for key in (
        "threshold",
        "weeks",
        "n_flagged",
        "per_week",
        "precision",
        "recall",
        "lift",
        "conversions_captured",
        "base_rate",
    ):
        out[f"threshold.{key}"] = float(threshold[key])
    for key, (low, high) in threshold["ci"].items():
        out[f"threshold.{key}_ci_low"] = float(low)
        out[f"threshold.{key}_ci_high"] = float(high)
    return out


# -- checks ----------------------------------------------------------------------------------


def _check_frame(frame: pd.DataFrame, feature_columns: list[str]) -> None:
    """The training table's contract: keys, every feature column and a 0/1 label, checked
    lazily (one error naming every problem, carrying the failing rows)."""
    TRAINING.validate(frame, columns=feature_columns, binary=("label",))


def _levels(
    frame: pd.DataFrame, categorical: Mapping[str, Sequence[str]] | Sequence[str]
) -> dict[str, list[str]]:
    if isinstance(categorical, Mapping):
        return {name: [str(v) for v in values] for name, values in categorical.items()}
    out = {}
    for name in categorical:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[name] = [str(v) for v in col.cat.categories]
        else:
            out[name] = sorted(str(v) for v in col.dropna().unique())
    return out


def _check_counts(split: Split, y: np.ndarray, counted: np.ndarray, model: ModelConfig) -> None:
    """Refuse to train or evaluate on too few examples, naming every short slice at once.

    Counts only the ``counted`` rows (one per user at the main cutoff): the rows every reported
    number uses, so extra cutoffs of the same users never make a slice look bigger than it is.
    """
    problems = []
    train = y[split.train[counted[split.train]]]
    pos, neg = int(train.sum()), int(train.size - train.sum())
    if pos < model.min_positives:
        problems.append(
            f"the train slice has {pos} positives; at least {model.min_positives} are needed "
            f"(lower model.min_positives, raise split.train, or load more data)"
        )
    if neg < model.min_negatives:
        problems.append(
            f"the train slice has {neg} negatives; at least {model.min_negatives} are needed "
            f"(lower model.min_negatives, raise split.train, or load more data)"
        )
    for name in SLICES[1:]:
        positions = split.positions(name)
        part = y[positions[counted[positions]]]
        pos, neg = int(part.sum()), int(part.size - part.sum())
        if min(pos, neg) < MIN_EVAL_PER_CLASS:
            problems.append(
                f"the {name} slice has {pos} positives and {neg} negatives; at least "
                f"{MIN_EVAL_PER_CLASS} of each are needed to evaluate (raise split.{name} or "
                f"load a longer date range)"
            )
    if problems:
        raise InsufficientDataError(
            "Not enough data to train honestly: " + "; ".join(problems) + "."
        )


def _out_of_fold(
    params: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    columns: Columns,
    users: np.ndarray,
    rounds: int,
    seed: int,
    folds: int = 5,
) -> np.ndarray:
    """Cross-fitted raw scores of the train slice: each user scored by a model fit without them.

    Users (all their cutoffs) are dealt to folds by a seeded shuffle; each fold's model has the
    chosen parameters and the final model's number of trees.
    """
    X, y = train
    unique, inverse = np.unique(users, return_inverse=True)
    fold_of = np.random.default_rng(seed).permutation(unique.size) % folds
    fold = fold_of[inverse]
    out = np.empty(y.size, dtype=float)
    for k in range(folds):
        held = fold == k
        if not held.any():
            continue
        data = columns.dataset(X[~held], y[~held])
        out[held] = lgb.train(params, data, num_boost_round=rounds).predict(X[held])
    return out
