"""Engines that hold the canonical tables and run the engine-neutral steps on them.

:class:`Engine` (``base.py``) is the contract every job is written against; ``duckdb.py`` is the
embedded default and ``spark.py`` the same contract on a cluster (pyspark only under here).
:func:`open_engine` picks the one ``cfg.engine`` names, so no job ever branches on an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from propensity.engines.base import Engine, ScoreScope

if TYPE_CHECKING:
    from propensity.config import Config, TaskConfig

__all__ = [
    "Engine",
    "ScoreScope",
    "check_wired_task",
    "open_engine",
    "scores_in_place",
]


def open_engine(cfg: Config, scope: ScoreScope | None = None) -> Engine:
    """Load the tables named in ``cfg.data`` on the engine ``cfg.engine`` names.

    ``scope``: a score job's spec and as-of, so that the engine may read only the events they
    need (DuckDB does; Spark reads all).

    >>> engine = open_engine(cfg)  # doctest: +SKIP
    """
    if cfg.engine == "spark":  # the registry: the only place an engine is chosen by name
        from propensity.engines.spark import open_spark

        return open_spark(cfg)
    from propensity.engines.duckdb import open_duckdb

    return open_duckdb(cfg, scope=scope)


def check_wired_task(task: TaskConfig | None) -> None:
    """Refuse a task ``discover`` cannot run yet: an account entity (train and score run it on
    either engine; discover's milestones and rules read users)."""
    if task is not None and task.entity == "account":
        from propensity.errors import ConfigError

        raise ConfigError(
            "task.entity 'account' is not supported by discover yet (train and score run "
            "account tasks). Use a user task for discover, or drop the task section; see "
            "docs/tasks.md."
        )


def scores_in_place(cfg: Config) -> bool:
    """Whether the score job of ``cfg`` scores and writes where the data is (a folder of parquet
    parts): Spark's, for a user entity.

    Such a job makes none of the single-machine outputs (previous-run changes, drift, account
    roll-up, csv): see docs/spark.md, "Known limits". An account task's job never does: its rows
    (one per eligible account) come to the driver, where each PQL names the members behind it
    (``pipeline/accounts.py``), by the one body every engine runs (docs/tasks.md, "On Spark").
    """
    return cfg.engine == "spark" and not (cfg.task is not None and cfg.task.entity == "account")
