"""The report's content: one function per section, each from the run's files to a `Section`.

Section ids and titles are fixed (:data:`SECTIONS`) so tests, readers and links can rely on them.
A section whose inputs are missing still appears, saying what is missing and how to get it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from propensity.explain import CONTEXT_FEATURES
from propensity.report.html import Section, fmt_number, image, paragraph, table, text
from propensity.report.names import readable

# Below these the test slice is too small for its numbers to mean much: said in red.
SMALL_TEST_USERS = 300
SMALL_TEST_POSITIVES = 30
# A ranking this close to chance, or a lift this low, is a weak model: said in red.
WEAK_ROC_AUC = 0.6
WEAK_LIFT = 1.5
_SLICE_ORDER = ("train", "validation", "calibration", "test")

__all__ = [
    "PERFORMANCE_PLOTS",
    "SECTIONS",
    "data_section",
    "drift_section",
    "drivers_section",
    "headline_section",
    "performance_section",
    "pqls_section",
    "promotion_section",
    "summary_section",
    "threshold_section",
]

SECTIONS = {
    "summary": "In one line",
    "pqls": "Current PQLs",
    "data": "Data",
    "headline": "Model vs rules at equal PQL volume",
    "discover": "Aha moments and a suggested rule",
    "threshold": "The PQL threshold, per week",
    "performance": "Model performance on the test period",
    "drivers": "What drives the score",
    "promotion": "Promotion decision",
    "drift": "Drift of the newest cohort",
}

# file name in plots/ -> caption; the order is the reading order
PERFORMANCE_PLOTS = {
    "roc.png": "ROC curve (calibrated score).",
    "precision_recall.png": "Precision-recall; the dotted line is the base rate.",
    "gains.png": "Cumulative gains and lift; each rule (and the model at its threshold) is a "
    "point. A rule below the curve catches fewer payers than the model at the same volume.",
    "calibration.png": "Reliability before and after calibration: points on the diagonal mean "
    "a 20% score converts 20% of the time.",
    "score_distribution.png": "Score by outcome: converters should sit to the right.",
}


def _interval(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    if low is None or (isinstance(low, float) and np.isnan(low)):
        return fmt_number(value, digits)
    return f"{fmt_number(value, digits)} [{fmt_number(low, digits)}, {fmt_number(high, digits)}]"


def _pct_interval(value: Any, low: Any, high: Any) -> str:
    if low is None or (isinstance(low, float) and np.isnan(low)):
        return _percent(value)
    return f"{_percent(value)} [{_percent(low)}, {_percent(high)}]"


def _points(value: Any, low: Any = None, high: Any = None) -> str:
    """A difference of two rates in percentage points, with its interval."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    shown = f"{100 * float(value):+.1f} pts"
    if low is None or (isinstance(low, float) and np.isnan(low)):
        return shown
    return f"{shown} [{100 * float(low):+.1f}, {100 * float(high):+.1f}]"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def data_section(
    summary: Mapping[str, Any],
    split: Mapping[str, Any],
    used: Mapping[str, int] | None = None,
) -> Section:
    """Period, users, conversion rate, the split, and every row dropped or excluded and why.

    ``used`` is the test slice's rows and payers behind every reported number (one row per
    user at the main cutoff), when known.
    """
    data = summary.get("data", {})
    labels = summary.get("labels", {})
    facts = pd.DataFrame(
        [
            ("period", f"{data.get('first_event', '?')} to {data.get('last_event', '?')}"),
            ("users", fmt_number(data.get("users"))),
            ("users who converted", fmt_number(data.get("converted_users"))),
            ("conversion rate", _percent(data.get("conversion_rate"))),
            ("labelled rows (user, cutoff)", fmt_number(labels.get("rows"))),
        ],
        columns=["", "value"],
    )
    body = [table(facts, formats={"value": str})]
    tables = data.get("tables", {})
    if tables:
        rows = [(n, t.get("rows_read"), t.get("rows_kept")) for n, t in sorted(tables.items())]
        body += [
            "<h3>Tables read</h3>",
            table(pd.DataFrame(rows, columns=["table", "read", "kept"])),
        ]
    drops = [(d["table"], d["reason"], d["rows"]) for d in data.get("drops", [])]
    drops += [
        ("label times", f"excluded: {reason.replace('_', ' ')}", count)
        for reason, count in sorted(labels.get("excluded", {}).items())
    ]
    body.append("<h3>What was excluded and why</h3>")
    if drops:
        frame = pd.DataFrame(drops, columns=["table", "reason", "rows"])
        body.append(table(frame, formats={"reason": str}))
    else:
        body.append(paragraph("Nothing was dropped.", "muted"))
    if split:
        body += ["<h3>Out-of-time split</h3>", split_table(split, used)]
    for note in data.get("notes", []):
        body.append(paragraph(note, "warn"))
    unseen = summary.get("unseen_events") or {}
    if unseen:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(unseen.items()))
        body.append(paragraph(f"Event types outside the training vocabulary: {listed}.", "muted"))
    return Section("data", SECTIONS["data"], "".join(body))


def split_table(split: Mapping[str, Any], used: Mapping[str, int] | None = None) -> str:
    """The slices in time order: dates, rows and payers, and the rows the metrics used."""
    names = [n for n in _SLICE_ORDER if n in split] + [n for n in split if n not in _SLICE_ORDER]
    rows = []
    for name in names:
        part = split[name]
        reported = used if name == "test" and used else None
        rows.append(
            (
                name,
                str(part.get("start") or "?")[:10],
                str(part.get("end") or "?")[:10],
                fmt_number(part.get("rows")),
                fmt_number(part.get("users")),
                fmt_number(part.get("positives")),
                fmt_number(reported["rows"]) if reported else "–",
                fmt_number(reported["positives"]) if reported else "–",
            )
        )
    columns = ["slice", "from", "to", "rows (all cutoffs)", "users", "converted rows"]
    columns += ["rows in the reported numbers", "of which converted"]
    note = paragraph(
        "Slices follow each other in time. Training, early stopping and calibration use every "
        "cutoff of their users; every reported number uses the test slice's main-cutoff rows "
        "(one per user), the last two columns.",
        "muted",
    )
    frame = pd.DataFrame(rows, columns=columns)
    return table(frame, formats=dict.fromkeys(columns, str)) + note


def headline_section(comparison: pd.DataFrame) -> Section:
    """Each rule against the model flagging exactly as many users, with paired 95% intervals."""
    rules = comparison[comparison["name"] != "model"]
    if rules.empty:
        body = paragraph(
            "No rules baseline was configured; add rules or templates under 'baselines:' in the "
            "config to judge the model against them.",
            "muted",
        )
        return Section("headline", SECTIONS["headline"], body)
    better = rules[rules["precision_diff_low"] > 0]
    rows = []
    for r in rules.to_dict("records"):
        rows.append(
            {
                "rule": r["name"],
                "PQLs per week": fmt_number(r["per_week"], 3),
                "rule precision": _pct_interval(
                    r["precision"], r["precision_low"], r["precision_high"]
                ),
                "model precision, same volume": _percent(r["model_precision_same_volume"]),
                "precision gain": _points(
                    r["precision_diff"], r["precision_diff_low"], r["precision_diff_high"]
                ),
                "extra conversions": _interval(
                    r["conversions_diff"], r["conversions_diff_low"], r["conversions_diff_high"]
                ),
                "note": r.get("note") if isinstance(r.get("note"), str) else "",
            }
        )
    frame = pd.DataFrame(rows)
    headline = (
        f"At the same number of PQLs, the model is more precise than {len(better)} of "
        f"{len(rules)} rules with 95% confidence (the interval of the precision gain lies above "
        f"zero)."
    )
    descriptions = "".join(
        f"<li><b>{text(r['name'])}</b>: {text(r['description'])}</li>"
        for r in rules.to_dict("records")
        if isinstance(r.get("description"), str) and r["description"]
    )
    body = [
        paragraph(headline, "callout"),
        table(frame, formats=dict.fromkeys(frame.columns, str)),
        paragraph(
            "Brackets are 95% bootstrap intervals; gains are model minus rule in percentage "
            "points on the same resampled test rows, the model flagging its top scores up to the "
            "rule's volume.",
            "muted",
        ),
    ]
    if descriptions:
        body.append(f"<h3>The rules</h3><ul>{descriptions}</ul>")
    return Section("headline", SECTIONS["headline"], "".join(body))


def threshold_section(threshold: Mapping[str, Any]) -> Section:
    """The chosen threshold and what it means each week: PQLs, conversions, precision."""
    ci = threshold.get("ci", {})
    weeks = float(threshold.get("weeks") or float("nan"))
    conv = threshold.get("conversions_captured")
    conv_ci = ci.get("conversions_captured", [None, None])
    per_week_conv = conv / weeks if conv is not None and weeks > 0 else float("nan")
    low, high = (c / weeks if c is not None and weeks > 0 else None for c in conv_ci)

    def row(name: str, key: str, percent: bool = False) -> tuple[str, str]:
        bounds = ci.get(key, [None, None])
        shown = _pct_interval if percent else _interval
        return name, shown(threshold.get(key), bounds[0], bounds[1])

    rows = [
        ("policy", str(threshold.get("policy", "?"))),
        ("threshold (calibrated probability)", _percent(threshold.get("threshold"))),
        row("PQLs per week", "per_week"),
        ("expected conversions per week", _interval(per_week_conv, low, high)),
        row("precision (share of PQLs who pay)", "precision", percent=True),
        row("recall (share of payers flagged)", "recall", percent=True),
        ("base rate (share of test users who paid)", _percent(threshold.get("base_rate"))),
        row("lift over the base rate", "lift"),
    ]
    body = [
        table(pd.DataFrame(rows, columns=["", "value"]), formats={"": str, "value": str}),
        paragraph(threshold.get("note", ""), "muted"),
    ]
    if threshold.get("reachable") is False:
        body.append(paragraph("The policy's target was not reachable on the test data.", "warn"))
    return Section("threshold", SECTIONS["threshold"], "".join(body))


def performance_section(metrics: Mapping[str, Any], plots: Mapping[str, bytes]) -> Section:
    """Test metrics before and after calibration, then the evaluation plots."""
    raw, cal = metrics.get("test_raw", {}), metrics.get("test_calibrated", {})
    names = ["roc_auc", "average_precision", "log_loss", "brier", "ece"]
    frame = pd.DataFrame(
        {
            "metric": names,
            "raw": [raw.get(n) for n in names],
            "calibrated": [cal.get(n) for n in names],
        }
    )
    calibration = metrics.get("calibration", {})
    body = [
        table(frame, formats={"metric": str}),
        paragraph(
            f"Calibration: {calibration.get('method', '?')} on "
            f"{fmt_number(calibration.get('positives'))} converters of the calibration slice.",
            "muted",
        ),
    ]
    for name, caption in PERFORMANCE_PLOTS.items():
        if name in plots:
            body.append(image(plots[name], alt=name.removesuffix(".png"), caption=caption))
        else:
            body.append(paragraph(f"Plot {name} is missing from the run's plots/ folder.", "warn"))
    return Section("performance", SECTIONS["performance"], "".join(body))


def drivers_section(
    importance: pd.DataFrame | None,
    figures: Mapping[str, bytes],
    plots: Mapping[str, bytes],
    spec: Any = None,
) -> Section:
    """Global SHAP (bar, beeswarm), partial dependence of the top features, LightGBM gain.

    Features are named as people read them (``spec`` gives the exact meaning); the trial age
    is marked as context wherever it shows, since it is never a reason a rep can act on.
    """
    body = []
    if importance is None:
        body.append(
            paragraph(
                "SHAP needs the test feature rows, which were not given; rebuild with the feature "
                "frame (see propensity.report.build_report).",
                "warn",
            )
        )
    else:
        top = importance.head(10)
        shown = pd.DataFrame(
            {
                "what it is": [
                    readable(f, spec) + (" (context)" if f in CONTEXT_FEATURES else "")
                    for f in top["feature"]
                ],
                "column": top["feature"].astype(str),
                "mean |SHAP|": top["mean_abs_shap"],
                "mean SHAP": top["mean_shap"],
            }
        )
        body += [
            paragraph(
                "SHAP values explain the model's log-odds; a larger mean |SHAP| moves more "
                "scores. The calibrated probability rises with the log-odds.",
                "muted",
            ),
            table(shown, formats={"what it is": str, "column": str}, left=("column",)),
        ]
        context = [f for f in top["feature"] if f in CONTEXT_FEATURES]
        if context:
            first = " It is the largest driver here:" if top["feature"].iloc[0] in context else ""
            body.append(
                paragraph(
                    f"The trial age at the cutoff ({', '.join(context)}) is context, not "
                    f"behaviour.{first} the model reads the other features differently at each "
                    f"trial age, and scoring meets users at every age. It is never given as a "
                    f"reason code; the drivers a rep can act on are the others.",
                    "callout",
                )
            )
    captions = {
        "shap_importance.png": "Mean |SHAP| per feature on test rows.",
        "shap_beeswarm.png": "One dot per test row: SHAP value, coloured by the feature's value.",
        "partial_dependence.png": "Partial dependence: the mean calibrated probability as one "
        "feature varies and the others stay as they were.",
    }
    for name, caption in captions.items():
        if name in figures:
            body.append(image(figures[name], alt=name.removesuffix(".png"), caption=caption))
    if "feature_importance.png" in plots:
        body.append(image(plots["feature_importance.png"], "feature_importance", "LightGBM gain."))
    return Section("drivers", SECTIONS["drivers"], "".join(body))


def promotion_section(promotion: Mapping[str, Any] | None) -> Section:
    """Whether this model became the champion, and the two numbers that decided it."""
    if not promotion:
        body = paragraph("No promotion decision was recorded for this run.", "muted")
        return Section("promotion", SECTIONS["promotion"], body)
    promoted = str(promotion.get("decision")) == "promoted"
    verdict = (
        f"Version {promotion.get('version', '?')} is the new champion."
        if promoted
        else f"The champion (version {promotion.get('champion_version', '?')}) was kept."
    )
    metric = promotion.get("metric", "metric")
    rows = [
        (f"this model's {metric}", fmt_number(promotion.get("new_value"), 4)),
        (f"champion's {metric} on the same rows", fmt_number(promotion.get("champion_value"), 4)),
        ("champion version before", str(promotion.get("champion_version") or "none")),
    ]
    body = [
        paragraph(verdict, "callout" if promoted else "warn"),
        table(pd.DataFrame(rows, columns=["", "value"]), formats={"": str, "value": str}),
        paragraph(promotion.get("reason", ""), "muted"),
    ]
    return Section("promotion", SECTIONS["promotion"], "".join(body))


def drift_section(drift: pd.DataFrame | None, limit: float = 0.25, top: int = 15) -> Section:
    """PSI of the newest scored cohort against the training reference, worst first."""
    if drift is None or drift.empty:
        body = paragraph(
            "No drift table was given. Score the newest cohort (propensity score) and rebuild the "
            "report with its drift table to see how far it moved from training.",
            "muted",
        )
        return Section("drift", SECTIONS["drift"], body)
    flagged = drift[drift["flag"].astype(bool)]
    verdict = (
        f"{len(flagged)} of {len(drift)} checks drifted above PSI {limit:g}: "
        + ", ".join(str(f) for f in flagged["feature"].head(8))
        if len(flagged)
        else f"All {len(drift)} checks are below PSI {limit:g}."
    )
    columns = [c for c in ("feature", "kind", "psi", "flag", "detail") if c in drift.columns]
    shown = drift[columns].head(top)
    body = [
        paragraph(verdict, "warn" if len(flagged) else "callout"),
        table(shown, formats={"feature": str, "kind": str, "detail": _plain}),
        paragraph(
            "PSI below 0.1 is stable, 0.1-0.25 worth a look, above 0.25 a real change.", "muted"
        ),
    ]
    return Section("drift", SECTIONS["drift"], "".join(body))


def summary_section(
    metrics: Mapping[str, Any], comparison: pd.DataFrame, used: Mapping[str, int] | None
) -> Section:
    """One line: PQLs a week, their precision, conversions a week, against the best rule.

    Then, in red, what makes the numbers weak: a small test slice, a model near chance, a
    model no better than the best rule.
    """
    t = metrics.get("threshold", {})
    ci = t.get("ci", {})
    weeks = float(t.get("weeks") or float("nan"))
    conv = t.get("conversions_captured")
    per_week_conv = conv / weeks if conv is not None and weeks > 0 else float("nan")
    precision = _pct_interval(t.get("precision"), *ci.get("precision", [None, None]))
    line = (
        f"The model flags {_one(t.get('per_week'))} PQLs a week; "
        f"{precision} of them pay (95% interval), about {_one(per_week_conv)} paying "
        f"customers a week, {_one(t.get('lift'))}x the base rate of "
        f"{_percent(t.get('base_rate'))}."
    )
    best = _best_rule(comparison)
    if best is not None:
        rule = _pct_interval(
            *(best.get(k) for k in ("precision", "precision_low", "precision_high"))
        )
        same = _percent(best.get("model_precision_same_volume"))
        line += (
            f" The best rule, {best['name']}, flags {_one(best['per_week'])} a week at "
            f"{rule}; at that volume the model is at {same} ({_gain(best)})."
        )
    if used:
        line += (
            f" Measured on {fmt_number(used['rows'])} test users, "
            f"{fmt_number(used['positives'])} of whom paid."
        )
    body = [paragraph(line, "headline")]
    body += [paragraph(w, "alert") for w in weaknesses(metrics, comparison, used)]
    return Section("summary", SECTIONS["summary"], "".join(body))


def weaknesses(
    metrics: Mapping[str, Any], comparison: pd.DataFrame, used: Mapping[str, int] | None
) -> list[str]:
    """Why the reported numbers may not hold up, one sentence each (empty: none found)."""
    out = []
    test = metrics.get("split", {}).get("test", {})
    n = (used or {}).get("rows", test.get("users"))
    positives = (used or {}).get("positives")
    if n is not None and (
        n < SMALL_TEST_USERS or (positives is not None and positives < SMALL_TEST_POSITIVES)
    ):
        out.append(
            f"Small test slice: {fmt_number(n)} users"
            + (f", {fmt_number(positives)} of whom paid" if positives is not None else "")
            + ". Every number in this report has a wide interval; judge the model again on "
            "more data before acting on it."
        )
    auc = metrics.get("test_calibrated", {}).get("roc_auc")
    lift = metrics.get("threshold", {}).get("lift")
    if auc is not None and not np.isnan(auc) and auc < WEAK_ROC_AUC:
        out.append(
            f"Weak model: ROC AUC {fmt_number(auc, 3)} on the test slice, close to chance (0.5)."
            " Its PQLs are barely better than a random pick."
        )
    elif lift is not None and not np.isnan(lift) and lift < WEAK_LIFT:
        out.append(f"Weak model: its PQLs pay at {fmt_number(lift, 2)}x the base rate only.")
    best = _best_rule(comparison)
    if best is not None and (best.get("precision_diff_high") or 0) < 0:
        out.append(
            f"The rule {best['name']} beats the model at its own volume with 95% confidence "
            f"({_gain(best)})."
        )
    return out


def _one(value: Any) -> str:
    """A rate or count with one decimal (15.0, 2.8), or a dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{float(value):,.1f}"


def _gain(row: Mapping[str, Any]) -> str:
    return _points(
        *(row.get(k) for k in ("precision_diff", "precision_diff_low", "precision_diff_high"))
    )


def _best_rule(comparison: pd.DataFrame) -> dict[str, Any] | None:
    """The rule with the highest precision (ties: more PQLs a week)."""
    rules = comparison[comparison["name"] != "model"]
    rules = rules[rules["precision"].notna()]
    if rules.empty:
        return None
    ranked = rules.sort_values(["precision", "per_week"], ascending=[False, False])
    return ranked.iloc[0].to_dict()


def pqls_section(scores: pd.DataFrame | None, top: int = 25) -> Section:
    """The current PQLs of the newest score run, with their reason codes."""
    if scores is None or scores.empty:
        body = paragraph(
            "No score run was given. Score the users in trial (propensity score) and rebuild the "
            "report with --scores to list the current PQLs and why.",
            "muted",
        )
        return Section("pqls", SECTIONS["pqls"], body)
    pqls = scores[scores["is_pql"].astype(bool)].sort_values("score", ascending=False)
    as_of = scores["as_of"].iloc[0] if "as_of" in scores else None
    reasons = [c for c in scores.columns if c.startswith("reason_") and c.endswith("_text")]
    rows = []
    for r in pqls.head(top).to_dict("records"):
        why = "; ".join(str(r[c]) for c in reasons if isinstance(r.get(c), str))
        row = {"user": str(r["user_id"])} if "user_id" in r else {}  # none: an account task
        row |= {
            "account": str(r.get("account_id") or "–"),
            "score": _percent(r["score"]),
            "hold out": "yes" if r.get("holdout") else "",
            "why": why or "–",
        }
        if "members" in r:  # the users behind an account PQL
            row["users"] = str(r.get("members") or "–")
        rows.append(row)
    when = f" at {str(as_of)[:16]} UTC" if as_of is not None else ""
    lead = f"{len(pqls):,} PQLs among {len(scores):,} users in trial{when}" + (
        f"; the {top} highest scores:" if len(pqls) > top else ":"
    )
    body = [paragraph(lead, "callout")]
    if rows:
        frame = pd.DataFrame(rows)
        body.append(
            table(
                frame,
                formats=dict.fromkeys(frame.columns, str),
                left=("account", "why", "users"),
            )
        )
        body.append(
            paragraph(
                "Score: calibrated probability of paying within the horizon. 'Hold out' PQLs are "
                "kept from outreach to measure the lift; reasons are the behaviours that raise "
                "the score most.",
                "muted",
            )
        )
    return Section("pqls", SECTIONS["pqls"], "".join(body))
