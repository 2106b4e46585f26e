"""Terminal rendering of results with rich: tables a person reads, never data a program parses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from propensity.io.summary import DataSummary

__all__ = ["data_summary", "drift_table", "feature_table", "frame_table", "metrics_table"]


def data_summary(report: DataSummary, console: Console, top_events: int = 20) -> None:
    """Print what was read, what was dropped and why, and the shape of the data."""
    tables = Table(title="Input tables", title_justify="left")
    for col in ("table", "source", "rows read", "rows kept"):
        tables.add_column(col, justify="right" if col.startswith("rows") else "left")
    for t in report.tables:
        tables.add_row(t.name, str(t.source or "-"), f"{t.rows_read:,}", f"{t.rows_kept:,}")
    console.print(tables)
    console.print(
        f"users: {report.users:,} ({report.users_with_events:,} with events), converted: "
        f"{report.converted_users:,} ({report.conversion_rate:.2%}), events from "
        f"{report.first_event} to {report.last_event}"
    )
    for note in report.notes:
        console.print(f"note: {note}")
    if report.drops:
        drops = Table(title="Dropped while cleaning", title_justify="left")
        for col in ("table", "reason", "rows", "examples"):
            drops.add_column(col, justify="right" if col == "rows" else "left")
        for d in report.drops:
            drops.add_row(d.table, d.reason, f"{d.rows:,}", ", ".join(d.examples))
        console.print(drops)
    else:
        console.print("Nothing dropped while cleaning.")
    events = Table(title=f"Event types (top {top_events})", title_justify="left")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, n in report.event_types[:top_events]:
        events.add_row(name, f"{n:,}")
    console.print(events)


def metrics_table(title: str, rows: Mapping[str, Mapping[str, Any]], console: Console) -> None:
    """Print a table of metric name -> {column: value}, numbers to four places."""
    table = Table(title=title, title_justify="left")
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    table.add_column("metric")
    for col in columns:
        table.add_column(col, justify="right")
    for name, values in rows.items():
        table.add_row(name, *(_fmt(values.get(c)) for c in columns))
    console.print(table)


def frame_table(title: str, records: Sequence[Mapping[str, Any]], console: Console) -> None:
    """Print a list of records (e.g. `DataFrame.to_dict('records')`) as a table."""
    table = Table(title=title, title_justify="left")
    if not records:
        console.print(f"{title}: (none)")
        return
    for col in records[0]:
        table.add_column(str(col), justify="right" if _numeric(records[0][col]) else "left")
    for rec in records:
        table.add_row(*(_fmt(v) for v in rec.values()))
    console.print(table)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, tuple) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return str(value)


def comparison_table(table: Any, console: Console) -> None:
    """Print the model-vs-rules comparison: each rule, and the model at the rule's volume."""
    out = Table(
        title="Model vs rules on the out-of-time test slice (95% bootstrap intervals)",
        title_justify="left",
    )
    for col in (
        "scorer",
        "PQLs/week",
        "precision",
        "recall",
        "lift",
        "model precision at same volume",
        "model - rule",
    ):
        out.add_column(col, justify="left" if col == "scorer" else "right")
    for row in table.to_dict("records"):
        same = row.get("model_precision_same_volume")
        diff = row.get("precision_diff")
        out.add_row(
            str(row["name"]),
            _fmt(row.get("per_week")),
            f"{_pct(row.get('precision'))} {_ci(row, 'precision')}",
            _pct(row.get("recall")),
            _fmt(row.get("lift")),
            "" if row["name"] == "model" else _pct(same),
            ""
            if row["name"] == "model"
            else f"{_signed(diff)} {_ci(row, 'precision_diff', signed=True)}",
        )
    console.print(out)


def print_training(outcome: Any, console: Console) -> None:
    """Print what a training run produced: split, metrics, threshold, rules, promotion."""
    split = Table(title="Out-of-time split (by cutoff date)", title_justify="left")
    for col in ("slice", "from", "to", "rows", "positives"):
        split.add_column(col, justify="right" if col in ("rows", "positives") else "left")
    for name, info in outcome.split.items():
        split.add_row(
            name,
            str(info["start"])[:10],
            str(info["end"])[:10],
            f"{info['rows']:,}",
            f"{info.get('positives', 0):,}",
        )
    console.print(split)
    h = outcome.headline
    metrics_table(
        f"Test slice ({h['test_rows']:,} users, {h['test_positives']:,} paid)",
        {
            "ROC AUC": {"value": h["roc_auc"]},
            "average precision": {"value": h["average_precision"]},
            "log loss (raw -> calibrated)": {
                "value": f"{h['log_loss_raw']:.4f} -> {h['log_loss']:.4f}"
            },
            "Brier (raw -> calibrated)": {"value": f"{h['brier_raw']:.4f} -> {h['brier']:.4f}"},
            "ECE (raw -> calibrated)": {"value": f"{h['ece_raw']:.4f} -> {h['ece']:.4f}"},
            "threshold": {"value": h["threshold"]},
            "PQLs per week": {"value": h["pqls_per_week"]},
            "precision at threshold": {"value": h["precision_at_threshold"]},
            "recall at threshold": {"value": h["recall_at_threshold"]},
            "lift at threshold": {"value": h["lift_at_threshold"]},
        },
        console,
    )
    comparison_table(outcome.comparison, console)
    d = outcome.decision
    champion = (
        "none" if d.champion_value is None else f"{d.champion_value:.4f} (v{d.champion_version})"
    )
    console.print(
        f"model version {d.version}: {'promoted to champion' if d.promoted else 'not promoted'} "
        f"({d.metric} {d.new_value:.4f} vs champion {champion})"
    )
    if getattr(d, "weakness", ""):
        console.print(f"[bold red]weak model, not promoted:[/] {d.weakness}")
    if outcome.tracking_note:
        console.print(f"note: {outcome.tracking_note}")
    console.print(f"run id: {outcome.run_id}")
    console.print(f"outputs: {outcome.output_dir}")
    console.print(f"report: {outcome.report}")


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.1%}"


def _signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value * 100:+.1f} pts"


def _ci(row: Mapping[str, Any], key: str, signed: bool = False) -> str:
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if low is None or high is None or low != low or high != high:
        return ""
    if signed:
        return f"[{low * 100:+.1f}, {high * 100:+.1f}]"
    return f"[{low:.1%}, {high:.1%}]"


def print_scoring(outcome: Any, console: Console, top: int = 10) -> None:
    """Print the top PQLs with their reasons and the job's summary line.

    An engine that scored in place (the scores are in its output folder) has only the summary.
    """
    summary = "summary " + " ".join(f"{k}={v}" for k, v in outcome.summary.items())
    scores = outcome.scores
    if scores is None:
        console.print(summary)
        return
    pqls = scores[scores["is_pql"]].head(top)
    table = Table(
        title=f"Top {len(pqls)} PQLs at {outcome.as_of:%Y-%m-%d %H:%M} UTC", title_justify="left"
    )
    accounts = "user_id" not in scores.columns  # an account task: the users behind each PQL
    cols = ("account", "score", "pct", "why", "users") if accounts else ("user", "account")
    cols = cols if accounts else (*cols, "score", "pct", "why")
    for col in cols:
        table.add_column(col, justify="right" if col in ("score", "pct") else "left")
    for row in pqls.to_dict("records"):
        reasons = [row.get(f"reason_{i}_text") for i in range(1, 4)]
        keys = [str(row.get("account_id") or "-")]
        if not accounts:
            keys.insert(0, str(row["user_id"]))
        table.add_row(
            *keys,
            f"{row['score']:.3f}",
            f"{row['percentile']:.0f}",
            "; ".join(r for r in reasons if isinstance(r, str)),
            *([str(row.get("members") or "")] if accounts else []),
        )
    console.print(table)
    drift_table(outcome.drift, console, source=outcome.paths.get("drift"))
    for name, path in outcome.paths.items():
        console.print(f"{name}: {path}")
    console.print(summary)


def feature_table(found: Any, console: Console) -> None:
    """Print each feature column, its family and what it means (``propensity features``)."""
    table = Table(
        title=f"{len(found.table)} features (spec {found.spec.hash}, {found.source})",
        title_justify="left",
    )
    for col in ("feature", "family", "meaning"):
        table.add_column(col, overflow="fold")
    for row in found.table.itertuples(index=False):
        table.add_row(row.feature, row.family, row.meaning)
    console.print(table)
    console.print("Column patterns and families: docs/features.md")


def drift_table(drift: Any, console: Console, top: int = 10, source: Any = None) -> None:
    """Print the checks that drifted above the limit as a table, the largest first."""
    flags = drift[drift["flag"].astype(bool)]
    if not len(flags):
        return
    flags = flags.assign(_order=flags["psi"].fillna(float("inf"))).sort_values(
        ["_order", "feature"], ascending=[False, True], kind="stable"
    )
    table = Table(
        title=f"[yellow]drift above the limit: {len(flags)} of {len(drift)} checks[/]",
        title_justify="left",
    )
    for col in ("feature", "kind", "PSI", "detail"):
        table.add_column(col, justify="right" if col == "PSI" else "left", overflow="fold")
    for row in flags.head(top).to_dict("records"):
        detail = row.get("detail")
        table.add_row(
            str(row["feature"]),
            str(row.get("kind", "")),
            _fmt(row.get("psi")),
            detail if isinstance(detail, str) else "",
        )
    console.print(table)
    if len(flags) > top:
        where = f" in {source}" if source is not None else ""
        console.print(f"... and {len(flags) - top} more{where}")


def mapping_lines(mapping: Any, console: Console) -> None:
    """Print the column mapping a detection found (preset, and columns found by name)."""
    console.print(f"columns: preset {mapping.preset.value}")
    for table, cols in mapping.found.items():
        shown = ", ".join(f"{c} <- {s}" for c, s in cols.items())
        console.print(f"  {table}: {shown}")


def print_init(result: Any, console: Console) -> None:
    """Print what init detected and chose, and where the config went."""
    p, s = result.profile, result.starter
    mapping_lines(result.mapping, console)
    console.print(
        f"data: {p.users:,} users, {p.converted:,} paid ({p.conversion_rate:.1%}), "
        f"{p.event_types} event types, signups {p.first_signup:%Y-%m-%d} to "
        f"{p.last_signup:%Y-%m-%d}"
    )
    for key in ("trial", "label", "milestones"):
        if key in p.evidence:
            console.print(f"- {p.evidence[key]}")
    console.print(
        f"- vocabulary: {len(p.vocabulary)} event types with at least {p.min_event_support} "
        f"users in the training slice"
    )
    console.print(f"- rules baselines: {', '.join(s.templates) or 'none of the templates'}")
    for name, missing in s.left_out.items():
        console.print(f"  left out {name}: names {', '.join(missing)}")
    for name, why in p.skipped_columns.items():
        console.print(f"- users column {name!r} left out: {why}")
    console.print(f"[green]wrote {result.path}[/]")
    console.print(f"next: propensity train --config {result.path}")


def print_demo(outcome: Any, console: Console) -> None:
    """Print the demo: simulation, training vs oracle, comparison, top PQLs, where to look."""
    sim = outcome.simulation
    console.print(f"simulated {sim.users:,} users, {sim.events:,} events in {sim.seconds:.1f} s")
    print_training(outcome.training, console)
    o = outcome.oracle
    metrics_table(
        "Model vs oracle (the simulator's true probabilities) on the same test rows",
        {
            "ROC AUC": {
                "model": o["model_roc_auc"],
                "oracle": o["oracle_roc_auc"],
                "model / oracle": o["roc_auc_ratio"],
            },
            "average precision": {
                "model": o["model_average_precision"],
                "oracle": o["oracle_average_precision"],
                "model / oracle": o["average_precision_ratio"],
            },
        },
        console,
    )
    print_scoring(outcome.scoring, console)
    console.print(f"model report (opens offline): {outcome.report}")
    console.print("open the MLflow UI with: make mlflow-ui   (then http://127.0.0.1:5000)")


def print_outcomes(done: Any, console: Console) -> None:
    """The holdout lift with its interval, realized vs promised precision, alerts, and paths."""
    lift = done.outcomes.lift
    runs = done.outcomes.runs
    pqls = int(runs["pqls"].sum())
    hits = float((runs["precision"] * runs["pqls"]).sum())
    realized = hits / pqls if pqls else float("nan")
    console.print(
        f"holdout lift: {lift['lift']:+.1%} (95% interval {lift['lift_low']:+.1%} to "
        f"{lift['lift_high']:+.1%}); contacted {lift['rate_contacted']:.1%} of "
        f"{lift['contacted']}, held out {lift['rate_held_out']:.1%} of {lift['held_out']}"
    )
    promised = done.promised_precision
    promise = "" if promised is None else f"; training promised {promised:.1%}"
    console.print(
        f"realized precision {realized:.1%} over {len(runs)} runs ({pqls:,} PQL-days); the "
        f"scores expected {runs['expected_precision'].mean():.1%}{promise}"
    )
    if "truth_expected" in lift:
        console.print(
            f"truth: {lift['entries']:,} PQL entries realized {lift['precision']:.1%} (95% "
            f"interval {lift['precision_low']:.1%} to {lift['precision_high']:.1%}); their true "
            f"chance {lift['truth_expected']:.1%}; true lift of the contacted "
            f"{lift['truth_lift']:+.1%}"
        )
        if lift["truth_unknown"]:
            console.print(
                f"[yellow]note:[/] {lift['truth_unknown']:,} PQL entries name entities the truth "
                f"does not know: is --truth the world these runs scored?"
            )
    for alert in done.outcomes.alerts:
        console.print(f"[bold red]alert:[/] {alert}", highlight=False)
    for name, path in done.paths.items():
        console.print(f"{name}: {path}")
    if done.run_id:
        console.print(f"run id: {done.run_id}")
