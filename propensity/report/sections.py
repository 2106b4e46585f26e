"""The report's content: one function per section, each from the run's files to a `Section`.

Section ids and titles are fixed (:data:`SECTIONS`) so tests, readers and links can rely on them.
A section whose inputs are missing still appears, saying what is missing and how to get it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from propensity.report.html import Section, fmt_number, image, paragraph, table, text

__all__ = [
    "PERFORMANCE_PLOTS",
    "SECTIONS",
    "data_section",
    "drift_section",
    "drivers_section",
    "headline_section",
    "performance_section",
    "promotion_section",
    "threshold_section",
]

SECTIONS = {
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


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def data_section(summary: Mapping[str, Any], split: Mapping[str, Any]) -> Section:
    """Period, users, conversion rate, the split, and every row dropped or excluded and why."""
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
        rows = [
            (
                name,
                part.get("start"),
                part.get("end"),
                part.get("rows"),
                part.get("positives"),
                part.get("weeks"),
            )
            for name, part in split.items()
        ]
        frame = pd.DataFrame(rows, columns=["slice", "from", "to", "rows", "converted", "weeks"])
        body += [
            "<h3>Out-of-time split</h3>",
            table(frame, formats={"from": str, "to": str, "slice": str}),
        ]
    for note in data.get("notes", []):
        body.append(paragraph(note, "warn"))
    unseen = summary.get("unseen_events") or {}
    if unseen:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(unseen.items()))
        body.append(paragraph(f"Event types outside the training vocabulary: {listed}.", "muted"))
    return Section("data", SECTIONS["data"], "".join(body))


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
                "rule precision": _interval(
                    r["precision"], r["precision_low"], r["precision_high"]
                ),
                "model precision, same volume": fmt_number(r["model_precision_same_volume"]),
                "precision gain": _interval(
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
            "Brackets are 95% bootstrap intervals; gains are model minus rule on the same "
            "resampled test rows, the model flagging its top scores up to the rule's volume.",
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

    def row(name: str, key: str) -> tuple[str, str]:
        bounds = ci.get(key, [None, None])
        return name, _interval(threshold.get(key), bounds[0], bounds[1])

    rows = [
        ("policy", str(threshold.get("policy", "?"))),
        ("threshold (calibrated probability)", fmt_number(threshold.get("threshold"), 4)),
        row("PQLs per week", "per_week"),
        ("expected conversions per week", _interval(per_week_conv, low, high)),
        row("precision (share of PQLs who pay)", "precision"),
        row("recall (share of payers flagged)", "recall"),
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
    importance: pd.DataFrame | None, figures: Mapping[str, bytes], plots: Mapping[str, bytes]
) -> Section:
    """Global SHAP (bar, beeswarm), partial dependence of the top features, LightGBM gain."""
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
        top = importance.head(10)[["feature", "mean_abs_shap", "mean_shap"]]
        body += [
            paragraph(
                "SHAP values explain the model's log-odds; a larger mean |SHAP| moves more "
                "scores. The calibrated probability rises with the log-odds.",
                "muted",
            ),
            table(top, formats={"feature": str}),
        ]
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
