"""`discover(cfg)`: aha moments and a suggested rule, learned on the training slice, judged later.

Steps: load, label and split exactly as ``train`` does (same slices, same spec learned on the
training rows) -> features of the training and test slices' main-cutoff rows (one per user)
-> rank the behaviours and learn the suggested rule on the training slice only -> judge it,
the user's rules and the model (the champion, when there is one) on the later test slice with
:func:`propensity.compare.compare`, at the same volume -> for each of the user's rules, a rule
the data supports at that rule's volume, side by side -> files, an HTML page and an MLflow run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity.baselines import baselines_from_config
from propensity.compare import compare, paired_bootstrap_difference
from propensity.config import Config, MilestoneOrder, ThresholdConfig
from propensity.discover import (
    Behaviours,
    SuggestedRule,
    candidate_milestones,
    rank_behaviours,
    suggest_rule,
)
from propensity.engines import check_wired_task
from propensity.engines.duckdb import DuckDBEngine
from propensity.errors import ConfigError, ModelError
from propensity.evaluate import bootstrap_flag_metrics, flag_metrics
from propensity.features import FeatureSpec, compute_features, learn_spec
from propensity.io import LoadedData, load_data, write_table
from propensity.io.atomic import run_folder
from propensity.labels import LabelTimes
from propensity.model.split import Split, split_label_times
from propensity.pipeline.artifacts import write_json
from propensity.pipeline.prepare import Prepared, main_cutoff_rows
from propensity.task_labels import task_label_times

__all__ = [
    "DiscoverOutcome",
    "Discovery",
    "discover_for_training",
    "discover_job",
    "distance_to_model",
    "learn_discovery",
    "matched_table",
    "target_volume",
    "write_discovery",
]

Progress = Callable[[str], None]
SUGGESTED = "suggested"
_DEFAULT_VOLUME = 0.05


@dataclass(frozen=True, eq=False)
class Discovery:
    """What was learned on the training slice: no test-slice number is in here."""

    behaviours: Behaviours
    suggestion: SuggestedRule
    matched: dict[str, SuggestedRule]  # the user's rule name -> a rule learned at its volume
    milestones: tuple[MilestoneOrder, ...]


@dataclass(frozen=True, eq=False)
class DiscoverOutcome:
    """A discovery and its judgement on the test slice, for printing."""

    discovery: Discovery
    comparison: pd.DataFrame  # compare()'s table: model (if any), your rules, the suggestion
    matched: pd.DataFrame  # per user rule: it and the rule learned at its volume
    distance: str
    model: str | None
    test_rows: int
    weeks: float
    output_dir: Path
    report: Path
    run_id: str
    note: str | None


def target_volume(cfg: Config, train_rows: int, train_weeks: float) -> float:
    """The fraction of trial users the suggested rule should flag.

    ``discover.volume`` when set; else the threshold policy's volume (``top_fraction``, or
    ``capacity_per_week`` over the training slice's trials per week); else 5%.

    >>> from propensity.config import config_from_dict
    >>> target_volume(config_from_dict({"data": {"events": "e"}}), 1000, 10.0)
    0.05
    """
    if cfg.discover.volume is not None:
        return cfg.discover.volume
    t: ThresholdConfig = cfg.threshold
    if t.policy == "top_fraction" and t.top_fraction is not None:
        return min(t.top_fraction, 0.5)
    if t.policy == "capacity" and t.capacity_per_week is not None and train_rows > 0:
        per_week = train_rows / max(train_weeks, 1 / 7)
        return float(np.clip(t.capacity_per_week / per_week, 0.002, 0.5))
    return _DEFAULT_VOLUME


def learn_discovery(
    cfg: Config,
    data: LoadedData,
    spec: FeatureSpec,
    train: pd.DataFrame,
    weeks: float,
    *,
    match: bool = True,
) -> Discovery:
    """Rank behaviours, suggest a rule and (with ``match``) a rule at the volume of each of the
    user's rules, on ``train`` only."""
    d = cfg.discover
    behaviours = rank_behaviours(
        data.con,
        train,
        spec,
        estimate_fraction=d.estimate_fraction,
        min_users=d.min_users,
        pair_events=d.pair_events,
        seed=cfg.seed,
    )
    volume = target_volume(cfg, len(train), weeks)
    suggestion = suggest_rule(train, spec, volume, max_conditions=d.max_conditions, name=SUGGESTED)
    matched = {}
    for baseline in baselines_from_config(cfg.baselines) if match else []:
        flags = np.asarray(baseline.fit(train).predict(train), dtype=bool)
        share = float(flags.mean())
        if 0 < share < 0.5:
            name = f"{SUGGESTED} ({baseline.label} volume)"
            described = f"learned for the volume of {baseline.label} on the training slice"
            matched[baseline.label] = suggest_rule(
                train,
                spec,
                share,
                max_conditions=d.max_conditions,
                name=name,
                description=described,
            )
    return Discovery(behaviours, suggestion, matched, candidate_milestones(behaviours))


def discover_job(
    cfg: Config,
    model_uri: str | None = None,
    *,
    project_dir: Path | None = None,
    progress: Progress = print,
) -> DiscoverOutcome:
    """Discover on the training slice, judge on the test slice, write and track the results."""
    from propensity.tracking import connect, log_discovery, start_run

    # Fail fast, before minutes of work: a task discover cannot run (before touching the
    # store, so a refusal leaves no empty experiment), an unreachable store (exit 5), an
    # unknown template.
    check_wired_task(cfg.task)
    connect(cfg.mlflow, project_dir)
    baselines_from_config(cfg.baselines)
    progress("loading data, building label times and the training slice's features")
    data = load_data(cfg.data)
    labels = task_label_times(data.con, cfg.label, cfg.task)  # today's without a task
    split = split_label_times(labels, cfg.split)
    spec = learn_spec(data.con, _rows(labels, split.train), cfg.features)
    main = main_cutoff_rows(labels, cfg.label)
    train = _features(data, labels, split.train[main[split.train]], spec)
    test = _features(data, labels, split.test[main[split.test]], spec)
    progress(f"ranking behaviours and learning a rule on {len(train):,} training users")
    discovery = learn_discovery(cfg, data, spec, train, split.weeks("train"))
    progress(f"judging the rules on {len(test):,} later test users")
    model, scores, threshold, note = _model_scores(
        cfg, model_uri, data, labels, split, main, test, spec
    )
    weeks = split.weeks("test")
    table = _judge(cfg, discovery, test, scores, threshold, weeks)
    matched = matched_table(table, test, discovery, cfg)
    distance = distance_to_model(table, weeks, has_model=scores is not None)
    with start_run(cfg, "discover", project_dir=project_dir) as run:
        out_dir = Path(cfg.output_dir) / f"discover-{run.run_id}"
        with run_folder(out_dir) as tmp:  # whole or absent: a failed run leaves no folder
            files = write_discovery(tmp / "discover", discovery, table, matched, weeks=weeks)
            page = _page(tmp, discovery, table, run.run_id)
            log_discovery(
                run,
                [*files, page],
                discovery.behaviours.table,
                _metrics(table, discovery),
                rule=discovery.suggestion.expr,
            )
        report = out_dir / page.relative_to(tmp)
        note = note or run.note
    return DiscoverOutcome(
        discovery,
        table,
        matched,
        distance,
        model,
        len(test),
        weeks,
        out_dir,
        report,
        run.run_id,
        note,
    )


def discover_for_training(cfg: Config, prepared: Prepared) -> Discovery | None:
    """With ``baselines.suggested: true``, the discovery ``train`` adds to its comparison."""
    if not cfg.baselines.suggested:
        return None
    if not isinstance(prepared.engine, DuckDBEngine):
        raise ConfigError(
            "baselines.suggested needs engine duckdb: discovery runs its SQL on DuckDB. Got "
            "engine spark; train with --engine duckdb or set baselines.suggested: false."
        )
    split = prepared.split
    rows = split.train[prepared.main_rows[split.train]]
    train = prepared.frame.iloc[rows].reset_index(drop=True)
    weeks = split.weeks("train")
    return learn_discovery(cfg, prepared.engine.data, prepared.spec, train, weeks, match=False)


def write_discovery(
    folder: Path,
    discovery: Discovery,
    comparison: pd.DataFrame,
    matched: pd.DataFrame | None = None,
    *,
    weeks: float,
) -> list[Path]:
    """Write ``behaviours.csv``, ``suggested.json`` (with its YAML, test numbers and distance
    to the model) and ``matched.csv`` into ``folder``: what the report section reads."""
    s = discovery.suggestion
    distance = distance_to_model(comparison, weeks, has_model="model" in set(comparison["name"]))
    row = comparison[comparison["name"] == s.name]
    judged = row.iloc[0].to_dict() if len(row) else {}
    suggestion = {
        **s.to_dict(),
        "yaml": s.yaml(),
        "distance": distance,
        "test": {k: _plain(v) for k, v in judged.items()},
        "milestones": [m.model_dump(mode="json") for m in discovery.milestones],
    }
    files = [
        write_table(discovery.behaviours.table, folder / "behaviours.csv", "csv"),
        write_json(suggestion, folder / "suggested.json"),
    ]
    if matched is not None:
        files.append(write_table(matched, folder / "matched.csv", "csv"))
    return files


def matched_table(
    comparison: pd.DataFrame, test: pd.DataFrame, discovery: Discovery, cfg: Config
) -> pd.DataFrame:
    """Per user rule: its numbers, the matched rule's, and the paired difference (95%)."""
    y = test["label"].to_numpy(dtype=float)
    by_name = comparison.set_index("name")
    users = {b.label: b for b in baselines_from_config(cfg.baselines)}
    rows = []
    for name, rule in discovery.matched.items():
        if name not in by_name.index or rule.name not in by_name.index:
            continue
        mine = np.asarray(users[name].fit(test).predict(test), dtype=bool)
        theirs = np.asarray(rule.baseline().fit(test).predict(test), dtype=bool)
        diff = paired_bootstrap_difference(
            y, theirs, mine, n=cfg.baselines.bootstrap, seed=cfg.seed
        )
        a, b = by_name.loc[name], by_name.loc[rule.name]
        rows.append(
            {
                "rule": name,
                "rule_flagged": int(a["n_flagged"]),
                "rule_per_week": a["per_week"],
                "rule_precision": a["precision"],
                "rule_precision_low": a["precision_low"],
                "rule_precision_high": a["precision_high"],
                "suggested": rule.expr,
                "suggested_flagged": int(b["n_flagged"]),
                "suggested_per_week": b["per_week"],
                "suggested_precision": b["precision"],
                "suggested_precision_low": b["precision_low"],
                "suggested_precision_high": b["precision_high"],
                "precision_diff": b["precision"] - a["precision"],
                "precision_diff_low": diff["precision"][0],
                "precision_diff_high": diff["precision"][1],
                "conversions_diff": float(y[theirs].sum() - y[mine].sum()),
                "conversions_diff_low": diff["conversions_captured"][0],
                "conversions_diff_high": diff["conversions_captured"][1],
                "model_precision_same_volume": b.get("model_precision_same_volume", np.nan),
            }
        )
    return pd.DataFrame(rows)


def distance_to_model(table: pd.DataFrame, weeks: float, *, has_model: bool) -> str:
    """The suggested rule's distance to the model at the same volume, in one plain sentence."""
    row = table[table["name"] == SUGGESTED]
    if row.empty:
        return "The suggested rule was not judged."
    r = row.iloc[0]
    if not has_model:
        return (
            f"The suggested rule flags {r['per_week']:.1f} trials per week at "
            f"{r['precision']:.1%} precision on the test slice. No model to compare with: train "
            f"one (propensity train) and run discover again."
        )
    gain = r["conversions_diff"] / weeks
    low, high = r["conversions_diff_low"] / weeks, r["conversions_diff_high"] / weeks
    more = "more" if gain >= 0 else "fewer"
    sure = "" if low > 0 or high < 0 else " (not a clear difference on this test slice)"
    return (
        f"At the suggested rule's volume ({r['per_week']:.1f} PQLs per week), the model finds "
        f"{abs(gain):.1f} {more} converters per week (95% interval {low:+.1f} to {high:+.1f})"
        f"{sure}: precision {r['model_precision_same_volume']:.1%} for the model vs "
        f"{r['precision']:.1%} for the rule."
    )


# ---- helpers -----------------------------------------------------------------------------------
def _rows(labels: LabelTimes, positions: np.ndarray) -> LabelTimes:
    frame = labels.frame.iloc[positions].reset_index(drop=True)
    return LabelTimes(frame, labels.excluded, labels.settings)


def _features(
    data: LoadedData, labels: LabelTimes, positions: np.ndarray, spec: FeatureSpec
) -> pd.DataFrame:
    rows = _rows(labels, positions)
    frame = compute_features(data.con, rows, spec).frame
    frame["label"] = rows.frame["label"].to_numpy(dtype=int)
    return frame


def _model_scores(
    cfg: Config,
    model_uri: str | None,
    data: LoadedData,
    labels: LabelTimes,
    split: Split,
    main: np.ndarray,
    test: pd.DataFrame,
    test_spec: FeatureSpec,
) -> tuple[str | None, np.ndarray | None, float, str | None]:
    """The model's test scores: the one asked for, else the champion when there is one.

    ``test`` holds discovery's test features (``test_spec``'s); reused when the model's spec is
    the same one.
    """
    from propensity.tracking import load_model

    uri = model_uri or f"models:/{cfg.mlflow.registered_model}@champion"
    try:
        model = load_model(uri, cfg.mlflow).pqlmodel
    except ModelError as exc:
        if model_uri is not None:
            raise
        return None, None, float("nan"), f"no model to compare with ({exc})"
    spec = model.spec
    if spec.hash != test_spec.hash:
        test = _features(data, labels, split.test[main[split.test]], spec)
    scores = model.predict_proba(test[list(spec.columns)])[:, 1]
    return uri, scores, float(model.threshold), None


def _judge(
    cfg: Config,
    discovery: Discovery,
    test: pd.DataFrame,
    scores: np.ndarray | None,
    threshold: float,
    weeks: float,
) -> pd.DataFrame:
    """compare()'s table for the user's rules, the suggestion and the matched rules."""
    baselines: list[Any] = [
        *baselines_from_config(cfg.baselines),
        discovery.suggestion.baseline(),
        *(r.baseline() for r in discovery.matched.values()),
    ]
    if scores is not None:
        result = compare(
            test, scores, threshold, baselines, weeks, n_boot=cfg.baselines.bootstrap, seed=cfg.seed
        )
        return result.table
    return _rules_only(test, baselines, weeks, cfg)


def _rules_only(
    test: pd.DataFrame, baselines: Sequence[Any], weeks: float, cfg: Config
) -> pd.DataFrame:
    """The rules' rows of compare()'s table when there is no model (same metrics code)."""
    y = test["label"].to_numpy(dtype=float)
    rows = []
    for baseline in baselines:
        flag = np.asarray(baseline.fit(test).predict(test), dtype=bool)
        m = flag_metrics(y, flag, weeks)
        ci = bootstrap_flag_metrics(y, flag, weeks, n=cfg.baselines.bootstrap, seed=cfg.seed)
        row: dict[str, Any] = {
            "name": baseline.label,
            "kind": baseline.kind,
            "description": baseline.description,
            "n_flagged": m.n_flagged,
            "base_rate": m.base_rate,
        }
        for key in ("per_week", "precision", "recall", "lift", "conversions_captured"):
            row[key] = float(getattr(m, key))
            row[f"{key}_low"], row[f"{key}_high"] = ci[key]
        rows.append(row)
    return pd.DataFrame(rows)


def _metrics(table: pd.DataFrame, discovery: Discovery) -> dict[str, float]:
    out: dict[str, float] = {
        "behaviours": float(len(discovery.behaviours.table)),
        "significant": float(discovery.behaviours.table["significant"].sum()),
        "suggested.volume": discovery.suggestion.volume,
    }
    row = table[table["name"] == SUGGESTED]
    if len(row):
        for key in ("precision", "recall", "per_week", "lift", "conversions_diff"):
            if key in row:
                out[f"suggested.{key}"] = float(row.iloc[0][key])
    return out


def _page(out_dir: Path, discovery: Discovery, table: pd.DataFrame, run_id: str) -> Path:
    """A standalone HTML page: the discovery section and the comparison."""
    from propensity.io import atomic_path
    from propensity.report.discover import discover_section, load_discovery
    from propensity.report.html import render_page
    from propensity.report.sections import headline_section

    sections = [discover_section(load_discovery(out_dir))]
    if "model" in set(table["name"]):
        sections.append(headline_section(table))
    target = out_dir / "report.html"
    html = render_page("Aha moments and a suggested PQL rule", f"discover run {run_id}", sections)
    with atomic_path(target) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return target


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
