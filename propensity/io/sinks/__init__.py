"""CRM sinks: where the current table and the history go (DuckDB file or PostgreSQL)."""

from __future__ import annotations

import os

from propensity.config import SinkConfig
from propensity.io.sinks.base import Sink

__all__ = ["Sink", "open_sink"]


def open_sink(cfg: SinkConfig) -> Sink:
    """The configured sink; ``PROPENSITY_CRM_DSN`` wins over ``crm.sink.dsn``."""
    if cfg.kind == "postgres":
        from propensity.errors import ConfigError
        from propensity.io.sinks.postgres import PostgresSink

        dsn = os.environ.get("PROPENSITY_CRM_DSN") or cfg.dsn
        if not dsn:
            raise ConfigError(
                "crm.sink.kind is postgres but no DSN is set. Set crm.sink.dsn or "
                "PROPENSITY_CRM_DSN (e.g. postgresql://user@localhost:5432/crm)."
            )
        return PostgresSink(dsn, cfg.db_schema, cfg.current_table, cfg.history_table)
    from propensity.io.sinks.duckdb import DuckDBSink

    return DuckDBSink(cfg.path, cfg.current_table, cfg.history_table)
