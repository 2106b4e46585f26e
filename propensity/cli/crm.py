"""The CRM commands: ``propensity outcomes`` (what the PQL program turned out to be) and
``propensity crm export`` (the upsert file a CRM sync takes)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from propensity.cli._app import (
    ConfigOption,
    EngineOption,
    app,
    check_dir,
    load,
    out,
    steps,
    user_errors,
)

__all__ = ["crm_export", "outcomes"]


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
    engine: EngineOption = None,
) -> None:
    """Realized precision, recall, PQL-to-paid per segment and route, and the holdout lift."""
    from propensity.cli.render import print_outcomes
    from propensity.pipeline.outcomes import outcomes_job

    with user_errors():
        cfg = load(config, engine)
        check_dir(out_dir, "--out")
        with steps(log=False) as progress:
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

    with user_errors():
        cfg = load(config)
        chosen = preset.value if preset is not None else cfg.crm.preset
        check_output_file(out_path, "--out")
        fields, path = export_current(cfg, chosen, out_path)
    out.print(f"{len(fields):,} rows keyed by {external_id(chosen)} ({chosen}): {path}")
