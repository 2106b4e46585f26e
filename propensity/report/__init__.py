"""The model report analysts read: one offline HTML file per training run.

>>> path = build_report(run_dir, features=test_rows, promotion=promotion)  # doctest: +SKIP
"""

from propensity.report.build import (
    REPORT_FILE,
    REPORT_PLOTS,
    RunFiles,
    build_report,
    explain_figures,
    load_run,
)
from propensity.report.dependence import feature_grid, partial_dependence
from propensity.report.sections import SECTIONS

__all__ = [
    "REPORT_FILE",
    "REPORT_PLOTS",
    "SECTIONS",
    "RunFiles",
    "build_report",
    "explain_figures",
    "feature_grid",
    "load_run",
    "partial_dependence",
]
