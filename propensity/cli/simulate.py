"""``propensity simulate``: a simulated product with known conversion probabilities, or a known
contact effect given to one (``--contact-effect``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from propensity.cli._app import Task, app, check_dir, duration, load, out, usage, user_errors
from propensity.config import Preset

__all__ = ["simulate"]


class Format(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the tables into.")],
    users: Annotated[
        int, typer.Option(min=1, help="Trial users; users (freemium) or accounts with --task.")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 7,
    start: Annotated[str, typer.Option(help="First signup date (YYYY-MM-DD).")] = "2025-01-01",
    days: Annotated[int, typer.Option(min=1, help="Days of signups and activity.")] = 180,
    fmt: Annotated[Format, typer.Option("--format", help="File format.")] = Format.parquet,
    preset: Annotated[Preset, typer.Option(help="Column layout of events.")] = Preset.canonical,
    drift: Annotated[float, typer.Option(min=0, max=1, help="Later-cohort mix shift.")] = 0.0,
    trial_days: Annotated[
        int, typer.Option(min=1, help="Days of trial; activity of non-payers fades after it.")
    ] = 14,
    observation_window: Annotated[
        str, typer.Option(help="Trial age at which the truth is computed (e.g. 7d, 14d).")
    ] = "7d",
    horizon: Annotated[
        str | None,
        typer.Option(help="Label horizon after the cutoff (default 30d; 28d for tasks)."),
    ] = None,
    day_only: Annotated[
        bool, typer.Option("--day-only", help="Every timestamp at midnight (date-only export).")
    ] = False,
    tail_events: Annotated[
        int, typer.Option(min=0, max=336, help="Extra long-tail event names (most rare).")
    ] = 0,
    base_rate: Annotated[
        float | None, typer.Option(help="Target conversion rate within the horizon, e.g. 0.02.")
    ] = None,
    task: Annotated[
        Task, typer.Option(help="World: trial clock, freemium users, accounts, expansion.")
    ] = Task.trial,
    lookback: Annotated[
        str, typer.Option(help="Tasks: active within this before an anchor to be eligible.")
    ] = "28d",
    signup: Annotated[
        bool, typer.Option(help="Tasks: write signup dates (--no-signup: first seen only).")
    ] = True,
    contact_effect: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            help="Give the world in --out a known effect of sales contact: each PQL the CRM "
            "history of --config contacted, that would not have paid within "
            "crm.outcome_horizon, pays with this probability (seeded by --seed).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="With --contact-effect: the project config."),
    ] = None,
) -> None:
    """Simulate a product-led SaaS population with known conversion probabilities.

    --task freemium|account|expansion writes a calendar world (weekly Monday anchors) with the
    true probability of each entity and anchor; the default is the trial-clock world.
    --contact-effect E -c CONFIG (after 'score --crm') rewrites the conversions of the world in
    --out instead, with a known contact effect (docs/crm.md).
    """
    from datetime import date

    from propensity.config import parse_duration
    from propensity.simulate import simulate as run_simulation
    from propensity.simulate.tasks import simulate_task

    if contact_effect is not None:
        _contact_effect(out_dir, contact_effect, config, seed)
        return
    with user_errors():
        try:
            first = date.fromisoformat(start)
        except ValueError:
            raise usage(f"--start must be a date like 2025-01-01, got {start!r}") from None
        default_horizon = "30d" if task == Task.trial else "28d"
        window, after, back = (
            duration(option, value, parse_duration)
            for option, value in (
                ("--observation-window", observation_window),
                ("--horizon", horizon or default_horizon),
                ("--lookback", lookback),
            )
        )
        check_dir(out_dir, "--out")
        if task != Task.trial:
            summary = simulate_task(
                out_dir, task.value, entities=users, seed=seed, start=first, days=days,
                format=fmt.value, preset=preset, horizon=after, lookback=back, signup=signup,
            )  # fmt: skip
            _print_simulation(summary, "entity-anchors")
            return
        summary = run_simulation(
            out_dir,
            users=users,
            seed=seed,
            start=first,
            days=days,
            format=fmt.value,
            preset=preset,
            drift=drift,
            observation_window=window,
            horizon=after,
            trial_days=trial_days,
            day_only=day_only,
            tail_events=tail_events,
            base_rate=base_rate,
        )
    _print_simulation(summary, "users")


def _contact_effect(world: Path, effect: float, config: Path | None, seed: int) -> None:
    from propensity.pipeline.contact import contact_effect_job

    with user_errors():
        if config is None:
            raise usage("--contact-effect needs --config: the project whose CRM history to read")
        done, paths = contact_effect_job(load(config), world, effect, seed)
    out.print(
        f"contact effect {effect:g}: {done.contacted:,} contacted PQLs, {done.added:,} payments "
        f"added; true lift {done.true_lift:.3f}"
    )
    for name, path in paths.items():
        out.print(f"{name}: {path}")


def _print_simulation(summary: Any, rows: str) -> None:
    o = summary.oracle
    out.print(
        f"wrote {summary.users:,} users and {summary.events:,} events to {summary.out} in "
        f"{summary.seconds:.1f} s ({summary.events / max(summary.seconds, 1e-9):,.0f} events/s)"
    )
    if o.roc_auc is None or o.base_rate is None:  # every row censored, or one class only
        out.print(f"oracle: not measurable on {o.n_eligible:,} eligible {rows} (add --days)")
        return
    out.print(
        f"oracle on {o.n_eligible:,} eligible {rows} (base rate {o.base_rate:.2%}): "
        f"ROC AUC {o.roc_auc:.4f}, average precision {o.average_precision:.4f}"
    )
