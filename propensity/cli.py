"""The command-line interface: the only module that knows typer.

Each command parses its options, loads the config, makes one pipeline call and prints the result.
A `PropensityError` becomes one clear message on stderr and its exit code (2 bad input, 3 model,
4 drift, 5 tracking store); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from propensity.config import Config, DataConfig, Preset, load_config
from propensity.errors import PropensityError

app = typer.Typer(
    name="propensity",
    help="Find Product Qualified Leads (PQLs) from product event logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Project config (YAML).", dir_okay=False)
]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a user's mistake into one message and an exit code, not a traceback."""
    try:
        yield
    except PropensityError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(exc.exit_code) from None


@app.callback()
def _root() -> None:
    """Find Product Qualified Leads (PQLs) from product event logs."""


@app.command()
def version() -> None:
    """Print the version."""
    from propensity import __version__

    out.print(__version__)


@app.command()
def validate(
    config: Annotated[Path | None, typer.Option("--config", "-c", dir_okay=False)] = None,
    events: Annotated[str | None, typer.Option(help="Events file, folder or glob.")] = None,
    users: Annotated[str | None, typer.Option(help="Users file.")] = None,
    conversions: Annotated[str | None, typer.Option(help="Conversions file.")] = None,
    preset: Annotated[Preset, typer.Option(help="Column layout of the events.")] = Preset.canonical,
) -> None:
    """Read, clean and check the input tables; print a data summary. Exit 2 on violations."""
    from propensity.io import load_data
    from propensity.render import data_summary

    with _user_errors():
        data = _data_config(config, events, users, conversions, preset)
        loaded = load_data(data)
    data_summary(loaded.report, out)
    out.print("[green]The data meets the contract.[/]")


def _data_config(
    config: Path | None,
    events: str | None,
    users: str | None,
    conversions: str | None,
    preset: Preset,
) -> DataConfig:
    if config is not None:
        return load_config(config).data
    if events is None:
        raise _usage("give --config CONFIG, or at least --events PATH")
    return DataConfig(events=events, users=users, conversions=conversions, preset=preset)


def _usage(message: str) -> PropensityError:
    return PropensityError(f"{message}. See 'propensity COMMAND --help'.")


def _load(config: Path) -> Config:
    return load_config(config)


def main() -> None:
    """Console-script entry point."""
    app()
