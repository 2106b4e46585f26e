"""How far a shallow tree ensemble gets with perfect inputs: the ceiling behind issue 14's bars.

Lives a task world (``propensity.simulate.journey.live``) while recording every window the
hazard reads, then trains LightGBM on the simulator's own inputs instead of our features:

- ``raw``: every quantity the hazard reads (log counts per event, last week, the 21 days before,
  active member-days, active weeks, tenure, recency, active and new members, admin billing,
  excess seats) at each of the four lags, with domain class and company size;
- ``lag0``: the same at the anchor's own window only;
- ``logits``: the four weekly hazard logits themselves.

Trains on the first 60% of anchors (early stopping on the next 15%), tests on the last 25%, and
prints AP and ROC AUC against the oracle (``p_true``) on those rows. It also checks that the
recorded windows rebuild ``p_true`` exactly (the oracle reads nothing after the anchor).

    .venv/bin/python benchmarks/task_ceiling.py --task freemium --entities 20000 --inputs raw
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.simulate.anchors import anchor_truth
from propensity.simulate.hazard import ACCOUNT, EXPANSION, FREEMIUM, Window
from propensity.simulate.journey import TaskSettings, live

LAGS = 4  # the horizon's weeks (28d): windows at the anchor and 1-3 weeks before


class _Recording:
    """A hazard model that keeps every window it reads."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.model, self.windows = model, []

    def logit(self, w: Window) -> np.ndarray:
        self.windows.append(w)
        return self.model.logit(w)


def _inputs(w: Window) -> np.ndarray:
    cols = [np.log1p(w.counts), *(getattr(w, f)[:, None] for f in (
        "last_week", "prior", "active_days", "active_weeks", "tenure_weeks", "days_since_last",
        "active_members", "new_members", "admin_billing", "excess_seats"))]  # fmt: skip
    return np.hstack([c.astype(float) for c in cols])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("freemium", "account", "expansion"), required=True)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--inputs", choices=("raw", "lag0", "logits"), default="raw")
    parser.add_argument("--leaves", type=int, default=3)
    args = parser.parse_args()
    t0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    end = t0 + 182 * 86_400
    first = {"freemium": FREEMIUM, "account": ACCOUNT}.get(
        args.task, replace(ACCOUNT, intercept=-4.6)
    )
    expansion = EXPANSION if args.task == "expansion" else None
    rec = _Recording(expansion or first)
    # the target's hazard model is the recorded one; the other (first payments) runs as is
    settings = TaskSettings(
        seed=args.seed, task=args.task, entities=args.entities, start=t0, end=end,
        horizon_weeks=LAGS, first=first if expansion else rec,
        expansion=rec if expansion else None,
    )  # fmt: skip
    journey = live(settings)
    windows = rec.windows[::2] if expansion is None else rec.windows  # read twice per week
    truth = anchor_truth(journey, start=t0, end=end, horizon_weeks=LAGS, lookback_weeks=4,
                         expansion=expansion is not None)  # fmt: skip
    week = ((truth.anchor - journey.grid.origin) // (7 * 86_400)).astype(int)
    # windows[i] is read at Monday i - (LAGS - 1); lag k of anchor week j is Monday j - k
    at = [week - k + LAGS - 1 for k in range(LAGS)]
    model = expansion or first
    per_week = np.stack([model.logit(w) for w in windows])  # Mondays x entities
    logits = np.stack([per_week[ix, truth.entity] for ix in at], axis=1)
    rebuilt = 1 - np.prod(1 - 1 / (1 + np.exp(-logits)), axis=1)
    err = np.abs(rebuilt - truth.p_true).max()
    print(f"p_true rebuilt from the recorded windows: max error {err:.1e}")
    if args.inputs == "logits":
        x = logits
    else:
        feats = np.stack([_inputs(w) for w in windows])  # Mondays x entities x inputs
        lags = [feats[ix, truth.entity] for ix in at]
        w0 = windows[0]
        static = np.stack(
            [w0.domain_class[truth.entity], np.nan_to_num(w0.company_size[truth.entity], nan=-1)],
            axis=1,
        )
        x = np.hstack((lags if args.inputs == "raw" else lags[:1]) + [static])
    keep = truth.reason == None  # noqa: E711 (elementwise): uncensored rows
    x, y, p, anchor = x[keep], truth.label[keep], truth.p_true[keep], truth.anchor[keep]
    mondays = np.unique(anchor)
    fit_end, test_start = mondays[int(0.6 * len(mondays))], mondays[int(0.75 * len(mondays))]
    fit, test = anchor < fit_end, anchor >= test_start
    valid = ~fit & ~test
    clf = lgb.LGBMClassifier(
        n_estimators=3000, learning_rate=0.05, num_leaves=args.leaves, min_child_samples=30,
        colsample_bytree=0.5, n_jobs=1, verbose=-1, random_state=args.seed,
    )  # fmt: skip
    clf.fit(x[fit], y[fit], eval_set=[(x[valid], y[valid])],
            callbacks=[lgb.early_stopping(200, verbose=False)])  # fmt: skip
    q = clf.predict_proba(x[test])[:, 1]
    ap, oap = average_precision_score(y[test], q), average_precision_score(y[test], p[test])
    auc, oauc = roc_auc_score(y[test], q), roc_auc_score(y[test], p[test])
    print(
        f"{args.task} seed {args.seed}, inputs {args.inputs}, {args.leaves} leaves: test "
        f"{test.sum():,} rows, {y[test].sum():,} positives; AP {ap:.4f} / {oap:.4f} = "
        f"{ap / oap:.3f}x; ROC AUC {auc:.4f} / {oauc:.4f} = {auc / oauc:.3f}x"
    )


if __name__ == "__main__":
    main()
