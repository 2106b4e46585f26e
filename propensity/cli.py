"""The command-line interface: the only module that knows typer.

Each command parses its options, loads the config, makes one pipeline call and prints the result.
A `PropensityError` becomes one line on stderr and its exit code; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="propensity",
    help="Find Product Qualified Leads (PQLs) from product event logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Find Product Qualified Leads (PQLs) from product event logs."""


@app.command()
def version() -> None:
    """Print the version."""
    from propensity import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
