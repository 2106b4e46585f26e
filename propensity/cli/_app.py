"""What every command shares: the typer app, the two consoles, the common options, progress
lines, and the one way a mistake becomes a message and an exit code (:func:`user_errors`)."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from propensity.config import Config, load_config
from propensity.errors import PropensityError, PropensityWarning

__all__ = [
    "ConfigOption",
    "Engine",
    "Task",
    "EngineOption",
    "app",
    "check_dir",
    "duration",
    "err",
    "load",
    "out",
    "progress_line",
    "steps",
    "usage",
    "user_errors",
]

# Set by the console script (``propensity.cli.main``): a command's temporary files then go into
# a folder of its own. A library caller or a test runner keeps the process's temp folder.
OWN_TEMP_FOLDER = False

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
def user_errors() -> Iterator[None]:
    """Turn a user's mistake, or a fault of the machine (a full disk, a permission), into one
    message and an exit code, not a traceback. Anything else is a bug and keeps its traceback."""
    if OWN_TEMP_FOLDER:  # the console script, not a library caller or a test runner
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


class Task(StrEnum):
    """The worlds ``simulate`` writes and the tasks ``demo`` runs end to end."""

    trial = "trial"
    freemium = "freemium"
    account = "account"
    expansion = "expansion"


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine | None, typer.Option(help="Where labels and features run; default: the config's.")
]


@contextlib.contextmanager
def steps(log: bool = True) -> Iterator[Callable[[str], None]]:
    """A live spinner with the current step and elapsed time on a terminal; plain lines in logs.

    Each finished step stays on screen with its duration, so a long job shows where time went.
    With ``log=False`` nothing is written when stderr is not a terminal: a scheduled job's log
    then holds its summary line, or its one error line, and nothing else.
    """
    if not err.is_terminal:
        yield progress_line if log else (lambda message: None)
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


def progress_line(message: str) -> None:
    err.print(f"[dim]- {message}[/]")


def check_dir(path: Path, what: str) -> None:
    from propensity.io.outputs import check_output_dir

    check_output_dir(path, what)


def usage(message: str) -> PropensityError:
    return PropensityError(f"{message.rstrip('.')}. See 'propensity COMMAND --help'.")


def duration(option: str, value: str, parse: Callable[[str], timedelta]) -> timedelta:
    """``value`` parsed, or a usage error naming the option that held it."""
    try:
        return parse(value)
    except ValueError as exc:
        raise usage(f"{option}: {exc}") from None


def load(config: Path, engine: Engine | None = None) -> Config:
    cfg = load_config(config)
    return cfg if engine is None else cfg.model_copy(update={"engine": engine.value})
