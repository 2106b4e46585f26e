"""The command-line interface: the only package that knows typer and rich.

Each command parses its options, loads the config, makes one pipeline call and prints the result
(terminal rendering lives beside it: ``render.py``, ``discover.py``). A `PropensityError` becomes
one clear message on stderr and its exit code (2 bad input, 3 model, 4 drift, 5 tracking store);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from propensity.cli import _app
from propensity.cli._app import (
    ConfigOption,
    Engine,
    EngineOption,
    Task,
    app,
    check_dir,
    duration,
    load,
    out,
    progress_line,
    steps,
    usage,
    user_errors,
)
from propensity.config import DataConfig, Preset, load_config

__all__ = ["app", "main"]


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

    with user_errors():
        data, mapping = _data_config(config, events, users, conversions, preset, column)
        if export is not None:
            check_dir(export, "--export")
        loaded = load_data(data)
    if mapping is not None:
        mapping_lines(mapping, out)
    data_summary(loaded.report, out)
    out.print("[green]The data meets the contract.[/]")
    if export is not None:
        with user_errors():
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

    with user_errors():
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
def train(config: ConfigOption, engine: EngineOption = None) -> None:
    """Train, calibrate and threshold a model; compare with the rules; track and register it."""
    with user_errors():
        cfg = load(config, engine)
        check_dir(Path(cfg.output_dir), "output_dir")  # before the heavy imports: fails at once
        from propensity.pipeline.train import train as run_training

        with steps() as progress:
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

    with user_errors():
        cfg = load(config)
        check_dir(Path(cfg.output_dir), "output_dir")
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

    with user_errors():
        cfg = load(config)
        with steps() as progress:
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
        _backtest(config, as_of, to, every, out_path, model, crm, engine)
        return
    with user_errors():
        cfg = load(config, engine)
        from propensity.pipeline.score import check_score_options, score_job

        check_score_options(cfg, out_path, previous, fail_on_drift, fmt == "csv")
        with steps(log=False) as progress:
            outcome = score_job(
                cfg, as_of, out_path, model, previous, fail_on_drift, fmt, progress, crm
            )
    print_scoring(outcome, out, top)


def _backtest(
    config: Path,
    start: str,
    end: str,
    every: str,
    out_path: Path,
    model: str | None,
    crm: bool,
    engine: Engine | None,
) -> None:
    from propensity.config import parse_duration
    from propensity.pipeline.backtest import backtest_job
    from propensity.pipeline.score import check_score_options

    with user_errors():
        cfg = load(config, engine)
        check_score_options(cfg, out_path, None, False, out_path.suffix == ".csv", backtest=True)
        step = duration("--every", every, parse_duration)
        with steps(log=False) as progress:
            done = backtest_job(cfg, start, end, step, out_path, model, crm, progress=progress)
    out.print(done.per_date.to_string(index=False, max_rows=20))
    out.print(f"scores: {done.path}  ({len(done.per_date)} dates in {done.seconds} s)")


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

    with user_errors():
        cfg = None if config is None else load(config)
        path = report_job(
            run_id, cfg, drift=drift, scores=scores, outcomes=outcomes, progress=progress_line
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

    with user_errors():
        found = feature_list(load(config), model)
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
        Task,
        typer.Option(
            help="trial: users at trial ages; freemium: active free users weekly; account: "
            "unpaid team accounts weekly; expansion: paying accounts weekly."
        ),
    ] = Task.trial,
) -> None:
    """Simulate a product, then train, compare with rules and score: the whole job end to end."""
    from propensity.cli.render import print_demo
    from propensity.pipeline.demo import demo as run_demo

    with user_errors():
        check_dir(out_dir, "--out")
        kind = None if task is Task.trial else task.value
        config = config or Path(f"configs/{'demo' if kind is None else kind}.yaml")
        with steps() as progress:
            outcome = run_demo(
                out_dir, users=users, seed=seed, config=config, progress=progress, task=kind
            )
    print_demo(outcome, out)


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
            raise usage(
                "--preset and --column apply to --events/--users/--conversions; with --config "
                "set data.preset and data.columns in the config"
            )
        return load_config(config).data, None
    if events is None:
        raise usage("give --config CONFIG, or at least --events PATH")
    from propensity.init import data_config, parse_column_options

    columns = parse_column_options(column or [])
    return data_config(events, users, conversions, preset=preset, columns=columns)


OWN_TEMP_FOLDER = False


# The commands of their own modules register on the app when imported; last, so that help
# lists the daily commands first.
from propensity.cli import crm as _crm  # noqa: E402, F401
from propensity.cli import simulate as _simulate  # noqa: E402, F401


def main() -> None:
    """Console-script entry point.

    A command's temporary files (DuckDB's work files, downloads) go into one folder owned by
    this process, removed at exit, and by the next run if this one is killed.
    """
    _app.OWN_TEMP_FOLDER = True
    # OpenMP threads that spin while they wait make LightGBM ~3x slower on a shared machine
    # (60 rounds, 40k x 140, 2 busy cores: 17.6 s spinning vs 5.6 s passive); read only when
    # lightgbm loads, which the commands do later. A user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
