"""The starter config's YAML text, each choice with a comment on what in the data made it.

The text is checked by reading it back into a :class:`~propensity.config.Config` before it is
written, and written without ever replacing an existing file unless asked to.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from propensity.baselines import available_templates, baseline_from_section, load_template
from propensity.config import Config, config_from_dict
from propensity.errors import ConfigError
from propensity.features import FeatureSpec
from propensity.features.spec import FAMILIES
from propensity.init.columns import ColumnMapping
from propensity.init.profile import Profile

__all__ = ["Starter", "refuse_existing", "starter_config", "write_new"]


@dataclass(frozen=True)
class Starter:
    """The config text, the config it reads back as, and what was left out and why."""

    text: str
    config: Config
    templates: tuple[str, ...]
    left_out: dict[str, list[str]]  # template -> the features it names that will not exist


def starter_config(
    profile: Profile,
    mapping: ColumnMapping,
    paths: dict[str, str | None],
    project: str,
    *,
    today: datetime | None = None,
) -> Starter:
    """The starter config for ``profile``'s data, read at ``paths`` with ``mapping``."""
    p = profile
    window = f"{p.window_days}d"
    windows = sorted({d for d in (1, 3, 7) if d <= p.window_days} | {p.window_days})
    spec = _predicted_spec(p, windows)
    templates, left_out = _templates(spec)
    lines = [
        f"# Starter config written by `propensity init` on {(today or datetime.now(UTC)):%Y-%m-%d}"
        " from the data itself.",
        "# Each choice says what in the data it comes from; every key is in docs/config.md.",
        "# Next: propensity validate --config <this file>, then propensity train --config <it>.",
        f"project: {_v(project)}",
        "seed: 42",
        f"output_dir: {_v(f'outputs/{project}')}",
        "",
        "data:",
        f"  events: {_v(paths['events'])}",
    ]
    for name in ("users", "conversions"):
        if paths.get(name) is not None:
            lines.append(f"  {name}: {_v(paths[name])}")
    lines.append(f"  preset: {mapping.preset.value}   # detected from the events' column names")
    if mapping.columns:
        lines.append("  columns:   # found by their names (or given with --column)")
        for table, cols in mapping.columns.items():
            lines.append(f"    {table}: {_v(dict(cols))}")
    lines += [
        "  unknown_user_events: drop   # events of users missing from the users table",
        "",
        "label:",
        *_comment(p.evidence.get("trial", ""), 2),
        *_comment(p.evidence.get("label", ""), 2),
        f"  observation_window: {window}",
        f"  horizon: {p.horizon_days}d",
        "  # Scoring meets users at every trial age, so training also cuts at other ages; every",
        "  # reported number uses the main cutoff's rows only (one per user).",
        f"  extra_cutoffs: {_v([f'{d}d' for d in p.extra_cutoff_days])}",
        f"  trial_length: {p.trial_days}d",
        "",
        "features:",
        f"  windows: {_v([f'{d}d' for d in windows])}",
        *_comment(
            f"{len(p.vocabulary)} of the data's {p.event_types} event types are done by at least "
            f"{p.min_event_support} users before their cutoff in the training slice "
            f"({p.train_users:,} users): they make the vocabulary (at most the 60 most common).",
            2,
        ),
        f"  min_event_support: {p.min_event_support}",
    ]
    lines += _milestone_lines(p)
    lines += _property_lines(p)
    lines.append(f"  numeric_user_columns: {_v(list(p.numeric_columns))}")
    lines.append(f"  categorical_user_columns: {_v(list(p.categorical_columns))}")
    for name, why in p.skipped_columns.items():
        lines.append(f"  # users column {name!r} left out: {why}")
    lines += ["", *_model_lines(p), "", *_threshold_lines(p), ""]
    lines += _baseline_lines(p, templates, left_out, window)
    lines += [
        "",
        "mlflow:",
        f"  experiment: {_v(project)}",
        f"  registered_model: {_v(f'{project}-pql')}",
        "",
    ]
    text = "\n".join(lines)
    config = config_from_dict(yaml.safe_load(text), source="the starter config")
    return Starter(text, config, templates, left_out)


def write_new(text: str, target: Path, force: bool = False) -> Path:
    """Write ``text`` to ``target`` atomically; refuse to replace a file unless ``force``.

    The text goes to a temporary file in the same folder and is linked (or, with ``force``,
    renamed) into place, so no reader sees half a config and no existing one is lost.
    """
    target = Path(target)
    refuse_existing(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(tmp, target)  # replaces a symlink itself, never the file it points to
        else:
            try:
                os.link(tmp, target)  # fails if the target appeared meanwhile: never clobbers
            except FileExistsError:
                raise ConfigError(
                    f"{str(target)!r} already exists; pass --force to overwrite it."
                ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def refuse_existing(target: Path, force: bool) -> None:
    """Raise a ConfigError when ``target`` exists (even as a dangling symlink) and not ``force``."""
    if not force and (target.exists() or target.is_symlink()):
        raise ConfigError(
            f"{str(target)!r} already exists; init never replaces a config. Pass --force to "
            f"overwrite it, or choose another --out."
        )


def _v(value: Any) -> str:
    """A YAML value on one line (flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _comment(text: str, indent: int) -> list[str]:
    if not text:
        return []
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > 96 - indent:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return [f"{' ' * indent}# {line}" for line in lines]


def _milestone_lines(p: Profile) -> list[str]:
    if not p.milestones:
        return ["  milestones: []   # " + p.evidence.get("milestones", "none found")]
    out = [*_comment(p.evidence.get("milestones", ""), 2), "  milestones:"]
    out += [f"    - {_v({'first': a, 'then': b})}" for a, b in p.milestones]
    return out


def _property_lines(p: Profile) -> list[str]:
    if not p.properties:
        return ["  properties: []   # no numeric JSON property found on the vocabulary's events"]
    out = ["  # numeric JSON properties of the vocabulary's events (sampled)", "  properties:"]
    out += [
        f"    - {_v({'event': e, 'property': k, 'aggregates': ['sum', 'max']})}"
        for e, k in p.properties
    ]
    return out


def _model_lines(p: Profile) -> list[str]:
    floor = min(50, max(10, int(0.7 * p.train_positives)))
    lines = ["model:"]
    if floor < 50:
        lines += _comment(
            f"The training slice holds about {p.train_positives} payers, fewer than the default "
            f"floor of 50: lowered to {floor}. Every number will be noisy; add data when you can.",
            2,
        )
    else:
        lines.append("  # LightGBM settings are left to their defaults (see docs/config.md).")
    lines += [f"  min_positives: {floor}", "  min_negatives: 50"]
    return lines


def _threshold_lines(p: Profile) -> list[str]:
    share = min(max(p.conversion_rate, 0.02), 0.10)
    capacity = _nice(p.signups_per_week * share)
    return [
        "threshold:",
        *_comment(
            f"About {p.signups_per_week:,.0f} trials start a week and {p.conversion_rate:.1%} of "
            f"users paid: a sales team that can work {capacity:g} PQLs a week ({share:.0%} of "
            f"trials). Set this to your team's real capacity.",
            2,
        ),
        "  policy: capacity",
        f"  capacity_per_week: {capacity:g}",
    ]


def _nice(x: float) -> float:
    """A round number near ``x``: 1-9 whole, then steps of 5, 10, 50, ..."""
    if x < 10:
        return float(max(1, round(x)))
    step = 5 * 10 ** max(0, len(str(int(x))) - 2)
    return float(round(x / step) * step)


def _baseline_lines(
    p: Profile, templates: tuple[str, ...], left_out: dict[str, list[str]], window: str
) -> list[str]:
    lines = ["baselines:"]
    lines += _comment(
        "The ready-made rules (configs/baselines/) whose features this data will have"
        + (
            "; left out: " + "; ".join(f"{t} (names {', '.join(f)})" for t, f in left_out.items())
            if left_out
            else ""
        ),
        2,
    )
    lines.append(f"  templates: {_v(list(templates))}")
    if p.activity_q90 > 0:
        rule = {
            "name": "most_active",
            "expr": f"n_events_{window} >= {p.activity_q90}",
            "description": f"The 10% most active trials: {p.activity_q90}+ events in the first "
            f"{window}.",
        }
        lines += ["  rules:", f"    - {_v(rule)}"]
    return lines


def _predicted_spec(p: Profile, windows: list[int]) -> FeatureSpec:
    """The spec training will learn, as far as the profile can tell (for choosing templates)."""
    return FeatureSpec(
        families=tuple(f for f in FAMILIES if f != "lagged"),  # on at calendar anchors only
        events=p.vocabulary,
        windows_s=tuple(d * 86_400 for d in windows),
        session_gap_s=1800,
        key_events=p.vocabulary,
        milestones=tuple((a, b, None) for a, b in p.milestones),
        numeric_user_columns=p.numeric_columns,
        categorical_user_columns=tuple((c, ("?",)) for c in p.categorical_columns),
        properties=tuple((e, k, ("sum", "max")) for e, k in p.properties),
    )


def _templates(spec: FeatureSpec) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    kept, left_out = [], {}
    columns = set(spec.columns)
    for name in available_templates():
        missing = [
            f
            for f in baseline_from_section(load_template(name)).named_features()
            if f not in columns
        ]
        if missing:
            left_out[name] = missing
        else:
            kept.append(name)
    return tuple(kept), left_out
