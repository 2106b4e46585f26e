"""The command-line interface: the only package that knows typer and rich.

Each command parses its options, loads the config, makes one pipeline call and prints the result
(terminal rendering lives beside it: ``render.py``, ``discover.py``). A `PropensityError` becomes
one clear message on stderr and its exit code (2 bad input, 3 model, 4 drift, 5 tracking store);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from propensity.config import Config, DataConfig, Preset, load_config
from propensity.errors import PropensityError, PropensityWarning


class Format(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


class SimTask(StrEnum):
    trial = "trial"
    freemium = "freemium"
    account = "account"
    expansion = "expansion"


class DemoTask(StrEnum):
    """The tasks ``demo`` runs end to end."""

    trial = "trial"
    freemium = "freemium"
    account = "account"
    expansion = "expansion"


app = typer.Typer(
    name="propensity",
    help="Find Product Qualified Leads (PQLs) from product event logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for the comparison table when output goes to a file or a CI log.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Project config (YAML).", dir_okay=False)
]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a user's mistake, or a fault of the machine (a full disk, a permission), into one
    message and an exit code, not a traceback. Anything else is a bug and keeps its traceback."""
    if _OWN_TEMP_FOLDER:  # the console script, not a library caller or a test runner
        from propensity.io.workspace import use_for_temp_files

        use_for_temp_files()
    try:
        yield
    except PropensityError as exc:
        _fail(exc)
    except Exception as exc:
        from propensity.io.faults import environment_error

        mapped = environment_error(exc)
        if mapped is None:
            raise
        _fail(mapped)


def _fail(exc: PropensityError) -> None:
    # the message is text, not markup: a column named "[b]" or a list repr must print as is
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(exc.exit_code) from None


def _print_version(value: bool) -> None:
    if value:
        from propensity import __version__

        out.print(f"propensity {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Find Product Qualified Leads (PQLs) from product event logs."""
    _show_warnings()


def _show_warnings() -> None:
    """Print each PropensityWarning once, as one ``warning:`` line on stderr."""
    warnings.simplefilter("default", PropensityWarning)
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, PropensityWarning):
            err.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


@app.command()
def version() -> None:
    """Print the version."""
    from propensity import __version__

    out.print(__version__)


PresetOption = Annotated[
    Preset | None, typer.Option(help="Column layout of the events; default: detected.")
]
ColumnOption = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        help="Map a column by hand: TABLE.COLUMN=SOURCE (e.g. events.event=event_name); repeat.",
    ),
]


@app.command()
def validate(
    config: Annotated[Path | None, typer.Option("--config", "-c", dir_okay=False)] = None,
    events: Annotated[str | None, typer.Option(help="Events file, folder or glob.")] = None,
    users: Annotated[str | None, typer.Option(help="Users file.")] = None,
    conversions: Annotated[str | None, typer.Option(help="Conversions file.")] = None,
    preset: PresetOption = None,
    column: ColumnOption = None,
    export: Annotated[
        Path | None, typer.Option(help="Also write the cleaned canonical tables (parquet) here.")
    ] = None,
) -> None:
    """Read, clean and check the input tables; print a data summary. Exit 2 on violations.

    Without --config the column mapping is detected as `init` detects it (--preset and
    --column win), and printed.
    """
    from propensity.cli.render import data_summary, mapping_lines
    from propensity.io import export_canonical, load_data

    with _user_errors():
        data, mapping = _data_config(config, events, users, conversions, preset, column)
        if export is not None:
            _check_dir(export, "--export")
        loaded = load_data(data)
    if mapping is not None:
        mapping_lines(mapping, out)
    data_summary(loaded.report, out)
    out.print("[green]The data meets the contract.[/]")
    if export is not None:
        with _user_errors():
            written = export_canonical(loaded, export)
        for name, path in written.items():
            out.print(f"wrote {name}: {path}")


@app.command()
def init(
    events: Annotated[str, typer.Option(help="Events file, folder or glob.")],
    users: Annotated[str, typer.Option(help="Users file (one row per user, signup time).")],
    conversions: Annotated[
        str | None, typer.Option(help="Conversions file (first payment per user).")
    ] = None,
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the config.", dir_okay=False)
    ] = Path("propensity.yaml"),
    project: Annotated[
        str | None, typer.Option(help="Project name; default: the --out file's name.")
    ] = None,
    preset: PresetOption = None,
    column: ColumnOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a starter config from the data itself: mapping, trial windows, events, rules."""
    from propensity.cli.render import print_init
    from propensity.init import init_config, parse_column_options

    with _user_errors():
        columns = parse_column_options(column or [])
        result = init_config(
            events,
            users,
            conversions,
            out_path,
            project=project,
            preset=preset,
            columns=columns,
            force=force,
        )
    print_init(result, out)


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
        SimTask, typer.Option(help="World: trial clock, freemium users, accounts, expansion.")
    ] = SimTask.trial,
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
    with _user_errors():
        try:
            first = date.fromisoformat(start)
        except ValueError:
            raise _usage(f"--start must be a date like 2025-01-01, got {start!r}") from None
        default_horizon = "30d" if task == SimTask.trial else "28d"
        window, after, back = (
            _duration(option, value, parse_duration)
            for option, value in (
                ("--observation-window", observation_window),
                ("--horizon", horizon or default_horizon),
                ("--lookback", lookback),
            )
        )
        _check_dir(out_dir, "--out")
        if task != SimTask.trial:
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

    with _user_errors():
        if config is None:
            raise _usage("--contact-effect needs --config: the project whose CRM history to read")
        done, paths = contact_effect_job(_load(config), world, effect, seed)
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


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine | None, typer.Option(help="Where labels and features run; default: the config's.")
]


@app.command()
def train(config: ConfigOption, engine: EngineOption = None) -> None:
    """Train, calibrate and threshold a model; compare with the rules; track and register it."""
    with _user_errors():
        cfg = _load(config, engine)
        _check_dir(Path(cfg.output_dir), "output_dir")  # before the heavy imports: fails at once
        from propensity.pipeline.train import train as run_training

        with _steps() as progress:
            outcome = run_training(cfg, progress=progress)
    from propensity.cli.render import print_training

    print_training(outcome, out)


@app.command()
def compare(
    config: ConfigOption,
    model: Annotated[
        str | None, typer.Option(help="Model URI or folder; default: champion.")
    ] = None,
) -> None:
    """Judge the model and every rules baseline on the same out-of-time test slice."""
    from propensity.cli.render import comparison_table
    from propensity.pipeline.compare import compare_job

    with _user_errors():
        cfg = _load(config)
        _check_dir(Path(cfg.output_dir), "output_dir")
        outcome = compare_job(cfg, model)
    comparison_table(outcome.table, out)
    out.print(
        f"{outcome.test_rows:,} test rows over {outcome.weeks:.1f} weeks; model {outcome.model}"
    )
    out.print(f"table written to {outcome.output}")


@app.command()
def discover(
    config: ConfigOption,
    model: Annotated[
        str | None, typer.Option(help="Model URI or folder; default: the champion, if any.")
    ] = None,
) -> None:
    """Rank the behaviours that separate converters and suggest a readable PQL rule."""
    from propensity.cli.discover import print_discovery
    from propensity.pipeline.discover import discover_job

    with _user_errors():
        cfg = _load(config)
        with _steps() as progress:
            outcome = discover_job(cfg, model, progress=progress)
    print_discovery(outcome, out, cfg.discover.top)


@app.command()
def score(
    config: ConfigOption,
    as_of: Annotated[str, typer.Option(help="Score time (ISO-8601, UTC if naive) or 'latest'.")],
    out_path: Annotated[Path, typer.Option("--out", help="Scores file (.parquet or .csv).")],
    model: Annotated[
        str | None, typer.Option(help="Model URI or folder; default: champion.")
    ] = None,
    previous: Annotated[Path | None, typer.Option(help="Previous scores, for new/dropped.")] = None,
    fail_on_drift: Annotated[
        bool, typer.Option(help="Exit 4 when drift is above the limit.")
    ] = False,
    top: Annotated[int, typer.Option(min=0, help="PQLs to print.")] = 10,
    engine: EngineOption = None,
    to: Annotated[
        str | None, typer.Option(help="Backtest: score every date from --as-of to this one.")
    ] = None,
    every: Annotated[str, typer.Option(help="Backtest step (e.g. 1d, 12h).")] = "1d",
    crm: Annotated[
        bool, typer.Option(help="Also update the CRM tables in the configured sink.")
    ] = False,
) -> None:
    """Score users in trial at --as-of: probability, PQL flag, reason codes. Atomic outputs.

    With --to, score every --every from --as-of to --to in one process (data read once) into
    one file with an as_of column; with --crm each date also updates the CRM tables in order.
    """
    from propensity.cli.render import print_scoring

    fmt = "csv" if out_path.suffix == ".csv" else None
    if to is not None:
        _backtest(config, as_of, to, every, out_path, model, crm)
        return
    with _user_errors():
        cfg = _load(config, engine)
        from propensity.pipeline.score import check_score_options, score_job

        check_score_options(cfg, out_path, previous, fail_on_drift, fmt == "csv", crm)
        with _steps(log=False) as progress:
            outcome = score_job(
                cfg, as_of, out_path, model, previous, fail_on_drift, fmt, progress, crm
            )
    print_scoring(outcome, out, top)


def _backtest(
    config: Path, start: str, end: str, every: str, out_path: Path, model: str | None, crm: bool
) -> None:
    from propensity.config import parse_duration
    from propensity.pipeline.backtest import backtest_job
    from propensity.pipeline.score import check_score_options

    with _user_errors():
        cfg = _load(config)
        check_score_options(cfg, out_path, None, False, out_path.suffix == ".csv", crm)
        step = _duration("--every", every, parse_duration)
        with _steps(log=False) as progress:
            done = backtest_job(cfg, start, end, step, out_path, model, crm, progress=progress)
    out.print(done.per_date.to_string(index=False, max_rows=20))
    out.print(f"scores: {done.path}  ({len(done.per_date)} dates in {done.seconds} s)")


@app.command()
def outcomes(
    config: ConfigOption,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the outcome tables.")],
    model: Annotated[str | None, typer.Option(help="Model whose promise to check.")] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="A simulated world's folder: also set realized precision and lift against "
            "each row's true chance of converting.",
        ),
    ] = None,
) -> None:
    """Realized precision, recall, PQL-to-paid per segment and route, and the holdout lift."""
    from propensity.cli.render import print_outcomes
    from propensity.pipeline.outcomes import outcomes_job

    with _user_errors():
        cfg = _load(config)
        _check_dir(out_dir, "--out")
        with _steps(log=False) as progress:
            done = outcomes_job(cfg, out_dir, model, progress=progress, truth=truth)
    print_outcomes(done, out)


crm_app = typer.Typer(help="The CRM tables of 'score --crm': files a CRM sync can take.")
app.add_typer(crm_app, name="crm")


class CrmPreset(StrEnum):
    generic = "generic"
    salesforce = "salesforce"
    hubspot = "hubspot"


@crm_app.command("export")
def crm_export(
    config: ConfigOption,
    out_path: Annotated[Path, typer.Option("--out", help="Upsert file to write (.csv).")],
    preset: Annotated[
        CrmPreset | None, typer.Option(help="Field names; default: crm.preset.")
    ] = None,
) -> None:
    """Write the current CRM table as a CSV for a bulk upsert keyed by an external id."""
    from propensity.crm import external_id
    from propensity.io.outputs import check_output_file
    from propensity.pipeline.crm import export_current

    with _user_errors():
        cfg = _load(config)
        chosen = preset.value if preset is not None else cfg.crm.preset
        check_output_file(out_path, "--out")
        fields, path = export_current(cfg, chosen, out_path)
    out.print(f"{len(fields):,} rows keyed by {external_id(chosen)} ({chosen}): {path}")


@app.command()
def report(
    run_id: Annotated[str, typer.Option("--run-id", help="MLflow run id of a training run.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Project config; default: the run's own.", dir_okay=False
        ),
    ] = None,
    drift: Annotated[Path | None, typer.Option(help="A *.drift.csv written by score.")] = None,
    scores: Annotated[
        Path | None, typer.Option(help="A scores file written by score: its PQLs are listed.")
    ] = None,
    outcomes: Annotated[
        Path | None, typer.Option(help="A folder written by 'propensity outcomes'.")
    ] = None,
) -> None:
    """Rebuild a training run's HTML report from MLflow and log it back to the run."""
    from propensity.pipeline.report import report_job

    with _user_errors():
        cfg = None if config is None else _load(config)
        path = report_job(
            run_id, cfg, drift=drift, scores=scores, outcomes=outcomes, progress=_progress
        )
    out.print(f"report: {path}")


@app.command()
def features(
    config: ConfigOption,
    model: Annotated[
        str | None,
        typer.Option(help="'champion', a model URI or folder; default: learn from the data."),
    ] = None,
) -> None:
    """List every feature column of the project with a one-line meaning."""
    from propensity.cli.render import feature_table
    from propensity.pipeline.features import feature_list

    with _user_errors():
        found = feature_list(_load(config), model)
    feature_table(found, out)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the simulated data.")] = Path(
        "data/demo"
    ),
    users: Annotated[int, typer.Option(min=1000, help="Simulated trial users.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 7,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Project config (default: configs/demo.yaml, or the task's config).",
            dir_okay=False,
        ),
    ] = None,
    task: Annotated[
        DemoTask,
        typer.Option(
            help="trial: users at trial ages; freemium: active free users weekly; account: "
            "unpaid team accounts weekly; expansion: paying accounts weekly."
        ),
    ] = DemoTask.trial,
) -> None:
    """Simulate a product, then train, compare with rules and score: the whole job end to end."""
    from propensity.cli.render import print_demo
    from propensity.pipeline.demo import demo as run_demo

    with _user_errors():
        _check_dir(out_dir, "--out")
        kind = None if task is DemoTask.trial else task.value
        config = config or Path(f"configs/{'demo' if kind is None else kind}.yaml")
        with _steps() as progress:
            outcome = run_demo(
                out_dir, users=users, seed=seed, config=config, progress=progress, task=kind
            )
    print_demo(outcome, out)


@contextlib.contextmanager
def _steps(log: bool = True) -> Iterator[Callable[[str], None]]:
    """A live spinner with the current step and elapsed time on a terminal; plain lines in logs.

    Each finished step stays on screen with its duration, so a long job shows where time went.
    With ``log=False`` nothing is written when stderr is not a terminal: a scheduled job's log
    then holds its summary line, or its one error line, and nothing else.
    """
    if not err.is_terminal:
        yield _progress if log else (lambda message: None)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        current: list[TaskID] = []

        def step(message: str) -> None:
            if current:
                bar.update(current[-1], completed=1, total=1)
            current.append(bar.add_task(message, total=None))

        yield step
        if current:
            bar.update(current[-1], completed=1, total=1)


def _progress(message: str) -> None:
    err.print(f"[dim]- {message}[/]")


def _data_config(
    config: Path | None,
    events: str | None,
    users: str | None,
    conversions: str | None,
    preset: Preset | None,
    column: list[str] | None,
) -> tuple[DataConfig, Any]:
    """The data section: the config's, or the given paths with a detected mapping."""
    if config is not None:
        if preset is not None or column:
            raise _usage(
                "--preset and --column apply to --events/--users/--conversions; with --config "
                "set data.preset and data.columns in the config"
            )
        return load_config(config).data, None
    if events is None:
        raise _usage("give --config CONFIG, or at least --events PATH")
    from propensity.init import data_config, parse_column_options

    columns = parse_column_options(column or [])
    return data_config(events, users, conversions, preset=preset, columns=columns)


def _check_dir(path: Path, what: str) -> None:
    from propensity.io.outputs import check_output_dir

    check_output_dir(path, what)


def _usage(message: str) -> PropensityError:
    return PropensityError(f"{message.rstrip('.')}. See 'propensity COMMAND --help'.")


def _duration(option: str, value: str, parse: Callable[[str], timedelta]) -> timedelta:
    """``value`` parsed, or a usage error naming the option that held it."""
    try:
        return parse(value)
    except ValueError as exc:
        raise _usage(f"{option}: {exc}") from None


def _load(config: Path, engine: Engine | None = None) -> Config:
    cfg = load_config(config)
    return cfg if engine is None else cfg.model_copy(update={"engine": engine.value})


_OWN_TEMP_FOLDER = False


def main() -> None:
    """Console-script entry point.

    A command's temporary files (DuckDB's work files, downloads) go into one folder owned by
    this process, removed at exit, and by the next run if this one is killed.
    """
    global _OWN_TEMP_FOLDER
    _OWN_TEMP_FOLDER = True
    # OpenMP threads that spin while they wait make LightGBM ~3x slower on a shared machine
    # (60 rounds, 40k x 140, 2 busy cores: 17.6 s spinning vs 5.6 s passive); read only when
    # lightgbm loads, which the commands do later. A user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
