"""A product-led SaaS simulator with known ground truth.

``simulate`` writes event, user and conversion files shaped like a real export (with the noise a
real export has), plus ``truth.parquet`` (each user's true conversion probability at the cutoff
and label) and ``oracle.json`` (how well the truth itself ranks the labels: the ceiling any
model can reach).

>>> summary = simulate(Path("data/demo"), users=20_000, seed=7)  # doctest: +SKIP
>>> summary.oracle.roc_auc  # doctest: +SKIP
0.89...
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.config import Preset
from propensity.errors import ConfigError
from propensity.simulate.behaviour import TRIAL_DAYS
from propensity.simulate.catalog import ENTERPRISE_DOMAINS, EVENTS, FREE_MAIL_DOMAINS, TAIL_EVENTS
from propensity.simulate.chunk import Settings, eligible_logits, simulate_chunk
from propensity.simulate.conversion import (
    TRUTH,
    TruthModel,
    intercept_for_base_rate,
    world_truth,
)
from propensity.simulate.noise import add_noise
from propensity.simulate.tables import (
    conversions_table,
    events_table,
    truth_table,
    users_table,
)
from propensity.simulate.writer import Format, TableWriter, write_part

__all__ = [
    "ENTERPRISE_DOMAINS",
    "EVENTS",
    "FREE_MAIL_DOMAINS",
    "TRUTH",
    "Oracle",
    "SimulationSummary",
    "TruthModel",
    "oracle_metrics",
    "simulate",
]

_REASONS = ("already_customer", "censored", "internal", "bot")


@dataclass(frozen=True)
class Oracle:
    """How ``p_true`` ranks the labels of the eligible users: the ceiling for any model."""

    roc_auc: float | None
    average_precision: float | None
    base_rate: float | None
    n_users: int
    n_eligible: int
    n_positive: int
    ineligible: MappingProxyType[str, int]

    def to_dict(self) -> dict[str, object]:
        """A plain, JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "ineligible": dict(self.ineligible)
        }


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate`` wrote: rows per table, paths, timings, the oracle and the truth formula."""

    out: Path
    users: int
    events: int
    rows: MappingProxyType[str, int]
    paths: MappingProxyType[str, Path]
    seconds: float
    oracle: Oracle
    truth: TruthModel = TRUTH


def simulate(
    out: Path,
    users: int,
    seed: int,
    start: date = date(2025, 1, 1),
    days: int = 180,
    format: Format = "parquet",  # the CLI option's name
    preset: Preset = Preset.canonical,
    observation_window: timedelta = timedelta(days=7),
    horizon: timedelta = timedelta(days=30),
    drift: float = 0.0,
    chunk_users: int = 20_000,
    *,
    trial_days: int = TRIAL_DAYS,
    day_only: bool = False,
    tail_events: int = 0,
    base_rate: float | None = None,
) -> SimulationSummary:
    """Simulate ``users`` trial users over ``days`` days from ``start`` and write them to ``out``.

    Deterministic by (``seed``, ``chunk_users``): the same arguments give byte-identical files.
    Memory is bounded by ``chunk_users``, whatever ``users`` is.

    World shapes (the defaults are the demo's world, whose files never change):

    - ``trial_days``: activity of users who do not pay fades after this many days;
    - ``day_only``: every timestamp at midnight, as in exports that keep only the date (the
      observation window and horizon must then be whole days);
    - ``tail_events``: that many extra long-tail event names (up to 336), Zipf-popular, most
      weightless, a few weakly weighted in the truth;
    - ``base_rate``: the share of eligible users who convert within the horizon, met by
      shifting the truth's intercept (solved on the first chunk's pre-cutoff behaviour).
    """
    _check(users, days, format, observation_window, horizon, drift, chunk_users)
    _check_world(trial_days, day_only, tail_events, base_rate, observation_window, horizon)
    began = time.perf_counter()
    preset = Preset(preset)
    out = Path(out)
    (out / "events").mkdir(parents=True, exist_ok=True)
    for stale in (out / "events").glob("part-*.*"):
        stale.unlink()  # parts of an earlier, bigger run would otherwise be read too
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    settings = Settings(
        seed=seed,
        start=t0,
        end=t0 + days * 86_400,
        window=int(observation_window.total_seconds()),
        horizon=int(horizon.total_seconds()),
        drift=float(drift),
        trial_days=trial_days,
        day_only=day_only,
        tail_events=tail_events,
        truth=world_truth(tail_events),
    )
    if base_rate is not None:
        logits = eligible_logits(settings, 0, min(chunk_users, users), 0)
        intercept = intercept_for_base_rate(logits, settings.truth.intercept, base_rate)
        settings = replace(settings, truth=world_truth(tail_events, intercept))
    text = format != "parquet"
    paths = {
        "events": out / "events",
        "users": out / f"users.{format}",
        "conversions": out / f"conversions.{format}",
        "truth": out / "truth.parquet",
        "oracle": out / "oracle.json",
    }
    n_events = 0
    truth_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with (
        TableWriter(paths["users"], format) as user_w,
        TableWriter(paths["conversions"], format) as conv_w,
        TableWriter(paths["truth"], "parquet") as truth_w,
    ):
        for k in range(math.ceil(users / chunk_users)):
            n = min(chunk_users, users - k * chunk_users)
            c = simulate_chunk(settings, k, n, k * chunk_users)
            noise_rng = np.random.default_rng([seed, k, 1])
            rows = add_noise(noise_rng, c.events, settings.start, settings.end, day_only)
            events = events_table(c.pop, rows, preset, text)
            write_part(events, paths["events"] / f"part-{k:05d}.{format}", format)
            n_events += events.num_rows
            user_w.write(users_table(c.pop, text))
            conv_w.write(conversions_table(c.pop, c.converted_at, settings.end, text))
            truth = truth_table(
                c.pop, c.cutoff, c.p_true, c.converted_at, settings.horizon, settings.end
            )
            truth_w.write(truth)
            truth_parts.append(
                (
                    truth["p_true"].to_numpy(),
                    truth["label"].to_numpy(zero_copy_only=False),
                    truth["reason"].to_numpy(zero_copy_only=False),
                )
            )
    p, label, reason = (np.concatenate(parts) for parts in zip(*truth_parts, strict=True))
    oracle = oracle_metrics(p, label, reason)
    record = {
        "oracle": oracle.to_dict(),
        "settings": {
            "users": users,
            "seed": seed,
            "start": start.isoformat(),
            "days": days,
            "format": format,
            "preset": preset.value,
            "observation_window_seconds": settings.window,
            "horizon_seconds": settings.horizon,
            "drift": settings.drift,
            "chunk_users": chunk_users,
        },
    }
    world = {
        "trial_days": trial_days,
        "day_only": day_only,
        "tail_events": tail_events,
        "base_rate": base_rate,
        "truth_intercept": settings.truth.intercept,
    }
    if settings.truth != TRUTH or (trial_days, day_only) != (TRIAL_DAYS, False):
        record["settings"]["world"] = world  # only shaped worlds: the default file never changes
    paths["oracle"].write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return SimulationSummary(
        out=out,
        users=users,
        events=n_events,
        rows=MappingProxyType(
            {
                "events": n_events,
                "users": user_w.rows,
                "conversions": conv_w.rows,
                "truth": truth_w.rows,
            }
        ),
        paths=MappingProxyType(paths),
        seconds=time.perf_counter() - began,
        oracle=oracle,
        truth=settings.truth,
    )


def oracle_metrics(p_true: np.ndarray, label: np.ndarray, reason: np.ndarray) -> Oracle:
    """ROC AUC, average precision and base rate of ``p_true`` on the eligible users.

    ``reason`` is None for eligible users; metrics are None when only one class is present.
    """
    eligible = np.array([r is None for r in reason], dtype=bool)
    y = np.asarray(label[eligible], dtype=np.int64)
    p = np.asarray(p_true[eligible], dtype=np.float64)
    both = 0 < y.sum() < len(y)
    return Oracle(
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        average_precision=float(average_precision_score(y, p)) if both else None,
        base_rate=float(y.mean()) if len(y) else None,
        n_users=len(reason),
        n_eligible=int(eligible.sum()),
        n_positive=int(y.sum()),
        ineligible=MappingProxyType({r: int((reason == r).sum()) for r in _REASONS}),
    )


def _check(
    users: int,
    days: int,
    fmt: str,
    window: timedelta,
    horizon: timedelta,
    drift: float,
    chunk_users: int,
) -> None:
    problems = []
    if not isinstance(users, int) or users < 1:
        problems.append(f"The 'users' parameter of simulate must be an int >= 1. Got {users!r}.")
    if not isinstance(days, int) or days < 1:
        problems.append(f"The 'days' parameter of simulate must be an int >= 1. Got {days!r}.")
    if fmt not in ("parquet", "csv", "jsonl"):
        problems.append(
            f"The 'format' parameter of simulate must be 'parquet', 'csv' or 'jsonl'. Got {fmt!r}."
        )
    for name, value in (("observation_window", window), ("horizon", horizon)):
        if value.total_seconds() < 3600 or value.total_seconds() % 1:
            problems.append(
                f"The '{name}' parameter of simulate must be whole seconds, at least one hour. "
                f"Got {value!r}."
            )
    if not 0.0 <= drift <= 1.0:
        problems.append(f"The 'drift' parameter of simulate must be in [0, 1]. Got {drift!r}.")
    if not isinstance(chunk_users, int) or chunk_users < 1:
        problems.append(
            f"The 'chunk_users' parameter of simulate must be an int >= 1. Got {chunk_users!r}."
        )
    if problems:
        raise ConfigError(" ".join(problems))


def _check_world(
    trial_days: int,
    day_only: bool,
    tail_events: int,
    base_rate: float | None,
    window: timedelta,
    horizon: timedelta,
) -> None:
    problems = []
    if not isinstance(trial_days, int) or trial_days < 1:
        problems.append(
            f"The 'trial_days' parameter of simulate must be an int >= 1. Got {trial_days!r}."
        )
    if not isinstance(tail_events, int) or not 0 <= tail_events <= len(TAIL_EVENTS):
        problems.append(
            f"The 'tail_events' parameter of simulate must be an int in [0, {len(TAIL_EVENTS)}]. "
            f"Got {tail_events!r}."
        )
    if base_rate is not None and not 0.001 <= base_rate <= 0.5:
        problems.append(
            f"The 'base_rate' parameter of simulate must be in [0.001, 0.5] or None. "
            f"Got {base_rate!r}."
        )
    if day_only and any(d.total_seconds() % 86_400 for d in (window, horizon)):
        hours = ", ".join(f"{d.total_seconds() / 3600:g}h" for d in (window, horizon))
        problems.append(
            f"A day-only world needs whole-day observation_window and horizon. Got {hours}."
        )
    if problems:
        raise ConfigError(" ".join(problems))
