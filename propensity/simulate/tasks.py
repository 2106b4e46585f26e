"""Task worlds on disk: freemium users, team accounts, and paying accounts that expand.

``simulate_task`` writes what ``simulate`` writes (events, users, conversions, oracle.json) plus
``payments`` for team worlds (every payment: account, payer, time, seats, first or expansion),
and a ``truth.parquet`` with one row per eligible (entity, Monday anchor): ``entity_id``,
``anchor_at``, ``p_true``, ``label``, ``reason``, ``target_at``. ``signup=False`` leaves the
signup date out of the users table (first seen is then the first event; the truth is the same).

>>> s = simulate_task(Path("data/freemium"), "freemium", entities=20_000, seed=7)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from propensity.config import Preset
from propensity.errors import ConfigError
from propensity.simulate.anchors import anchor_table, anchor_truth
from propensity.simulate.catalog import SEAT_ROLES
from propensity.simulate.conversion import NEVER
from propensity.simulate.hazard import ACCOUNT, EXPANSION, FREEMIUM
from propensity.simulate.journey import Journey, Task, TaskSettings, live
from propensity.simulate.noise import add_noise
from propensity.simulate.tables import conversions_table, events_table, users_table
from propensity.simulate.writer import Format, write_part

__all__ = ["TASKS", "simulate_task"]

TASKS: tuple[str, ...] = ("freemium", "account", "expansion")
_WEEK = timedelta(days=7)


def simulate_task(
    out: Path,
    task: Task,
    entities: int,
    seed: int,
    start: date = date(2025, 1, 1),
    days: int = 182,
    format: Format = "parquet",  # the CLI option's name
    preset: Preset = Preset.canonical,
    horizon: timedelta = timedelta(days=28),
    lookback: timedelta = timedelta(days=28),
    *,
    signup: bool = True,
):  # type: ignore[no-untyped-def]  # returns propensity.simulate.SimulationSummary
    """Simulate ``entities`` users (freemium) or accounts (account, expansion) over ``days``.

    Deterministic by ``seed``: the same arguments give byte-identical files.
    """
    from propensity.simulate import SimulationSummary, oracle_metrics  # the package's types

    _check(task, entities, days, format, horizon, lookback)
    began = time.perf_counter()
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    end = t0 + days * 86_400
    weeks, back = horizon // _WEEK, lookback // _WEEK
    settings = TaskSettings(
        seed=seed,
        task=task,
        entities=entities,
        start=t0,
        end=end,
        horizon_weeks=weeks,
        first={"freemium": FREEMIUM, "account": ACCOUNT}.get(
            task, replace(ACCOUNT, intercept=-4.6)
        ),
        expansion=EXPANSION if task == "expansion" else None,
    )
    journey = live(settings)
    truth = anchor_truth(
        journey, start=t0, end=end, horizon_weeks=weeks, lookback_weeks=back,
        expansion=task == "expansion",
    )  # fmt: skip
    out = Path(out)
    (out / "events").mkdir(parents=True, exist_ok=True)
    for stale in (out / "events").glob("part-*.*"):
        stale.unlink()
    text = format != "parquet"
    pop = journey.members.pop
    rows = add_noise(np.random.default_rng([seed, 14, 1]), journey.events, t0, end)
    paths = {
        "events": out / "events",
        "users": out / f"users.{format}",
        "conversions": out / f"conversions.{format}",
        "truth": out / "truth.parquet",
        "oracle": out / "oracle.json",
    }
    events = events_table(pop, rows, Preset(preset), text)
    write_part(events, paths["events"] / f"part-00000.{format}", format)
    write_part(_users(journey, text, task != "freemium", signup), paths["users"], format)
    payer_paid = np.full(len(pop), NEVER)
    payer = np.flatnonzero(journey.members.inviter < 0)
    payer_paid[payer] = journey.paid_at
    write_part(conversions_table(pop, payer_paid, end, text), paths["conversions"], format)
    if task != "freemium":
        paths["payments"] = out / f"payments.{format}"
        write_part(_payments(journey, end, text), paths["payments"], format)
    ids = pop.user_id[payer] if task == "freemium" else pop.account_id[payer]
    write_part(anchor_table(truth, ids), paths["truth"], "parquet")
    oracle = oracle_metrics(truth.p_true, truth.label, truth.reason)
    record = {
        "oracle": oracle.to_dict(),
        "settings": {
            "task": task,
            "entities": entities,
            "users": len(pop),
            "seed": seed,
            "start": start.isoformat(),
            "days": days,
            "format": format,
            "preset": Preset(preset).value,
            "horizon_seconds": int(horizon.total_seconds()),
            "lookback_seconds": int(lookback.total_seconds()),
            "anchors": "weekly on Monday",
            "signup": signup,
        },
    }
    paths["oracle"].write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return SimulationSummary(
        out=out,
        users=len(pop),
        events=events.num_rows,
        rows=MappingProxyType(
            {"events": events.num_rows, "users": len(pop), "truth": len(truth.p_true)}
        ),  # fmt: skip
        paths=MappingProxyType(paths),
        seconds=time.perf_counter() - began,
        oracle=oracle,
    )


def _users(journey: Journey, text: bool, teams: bool, signup: bool) -> pa.Table:
    table = users_table(journey.members.pop, text)
    if teams:
        roles = np.array(SEAT_ROLES, dtype=object)[journey.members.seat_role]
        table = table.append_column("seat_role", pa.array(roles, pa.string()))
    if not signup:
        table = table.drop_columns(["signup_at"])
    return table


def _payments(journey: Journey, end: int, text: bool) -> pa.Table:
    """Every payment before the data end: the first, then the larger one (expansion)."""
    pop = journey.members.pop
    payer = np.flatnonzero(journey.members.inviter < 0)
    first = np.flatnonzero(journey.paid_at < end)
    more = np.flatnonzero(journey.expanded_at < end)
    at = np.concatenate([journey.paid_at[first], journey.expanded_at[more]])
    seats = np.concatenate([journey.seats[first], journey.expanded_seats[more]])
    kind = np.array(["first"] * len(first) + ["expansion"] * len(more), dtype=object)
    ent = np.concatenate([first, more])
    order = np.lexsort((ent, at))
    stamps = (
        pc.strftime(pa.array(at[order], pa.timestamp("s")), "%Y-%m-%dT%H:%M:%SZ")
        if text
        else pa.array(at[order] * 1_000_000, pa.timestamp("us", tz="UTC"))
    )
    return pa.table(
        {
            "account_id": pa.array(pop.account_id[payer[ent[order]]], pa.string()),
            "user_id": pa.array(pop.user_id[payer[ent[order]]], pa.string()),
            "paid_at": stamps,
            "seats": pa.array(seats[order], pa.int64()),
            "kind": pa.array(kind[order], pa.string()),
        }
    )


def _check(
    task: str, entities: int, days: int, fmt: str, horizon: timedelta, lookback: timedelta
) -> None:
    problems = []
    if task not in TASKS:
        problems.append(
            f"The 'task' parameter of simulate_task must be one of {TASKS}. Got {task!r}."
        )
    if not isinstance(entities, int) or entities < 1:
        problems.append(
            f"The 'entities' parameter of simulate_task must be an int >= 1. Got {entities!r}."
        )
    if not isinstance(days, int) or days < 28:
        problems.append(
            f"The 'days' parameter of simulate_task must be an int >= 28. Got {days!r}."
        )
    if fmt not in ("parquet", "csv", "jsonl"):
        problems.append(
            f"The 'format' parameter of simulate_task must be 'parquet', 'csv' or 'jsonl'. "
            f"Got {fmt!r}."
        )
    for name, value in (("horizon", horizon), ("lookback", lookback)):
        if value < _WEEK or value % _WEEK:
            problems.append(
                f"The '{name}' parameter of simulate_task must be whole weeks (anchors are "
                f"weekly), at least one. Got {value.total_seconds() / 86_400:g}d."
            )
    if problems:
        raise ConfigError(" ".join(problems))
