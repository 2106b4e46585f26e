"""Scoring outputs and what the CRM sync receives: lifecycle, routing, sink."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from propensity.config._base import Duration, PositiveDuration, Section

__all__ = [
    "CrmConfig",
    "LifecycleConfig",
    "RouteCondition",
    "RouteConfig",
    "RouteRule",
    "RoutingConfig",
    "ScoringConfig",
    "SinkConfig",
]


class ScoringConfig(Section):
    reason_codes: int = Field(default=3, ge=0)
    # Which rows get SHAP reason codes: the PQLs plus the top fraction of scores, or all rows.
    explain: Literal["pql_and_top", "all", "none"] = "pql_and_top"
    explain_top_fraction: float = Field(default=0.1, ge=0, le=1)
    holdout_fraction: float = Field(default=0.0, ge=0, lt=1)
    holdout_salt: str = "propensity"
    drift_psi_limit: float = Field(default=0.25, gt=0)
    account_rollup: bool = True
    output_format: Literal["parquet", "csv"] = "parquet"


class LifecycleConfig(Section):
    """When a scored entity becomes, stays and stops being a PQL (see docs/crm.md)."""

    # None: the model's threshold. An entity enters at or above it...
    entry_threshold: float | None = Field(default=None, gt=0, le=1)
    # ...and leaves below entry x exit_ratio: a score wobbling around the entry cannot flap.
    exit_ratio: float = Field(default=0.8, gt=0, le=1)
    min_pql_time: Duration = timedelta(days=7)
    cooldown: Duration = timedelta(days=14)
    suppress_converted: bool = True


class RouteCondition(Section):
    """One test on a segment column: ``in`` a list of values, and/or within ``min``/``max``."""

    column: str = Field(min_length=1, max_length=200)
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> RouteCondition:
        if self.in_ is None and self.min is None and self.max is None:
            raise ValueError(f"the condition on '{self.column}' needs 'in', 'min' or 'max'.")
        return self


class RouteRule(Section):
    """Send entities matching every condition to ``route``; the first matching rule wins."""

    name: str = Field(min_length=1, max_length=100)
    route: str = Field(min_length=1, max_length=50)
    when: list[RouteCondition] = Field(min_length=1, max_length=50)


class RouteConfig(Section):
    # None: no limit. PQLs past the week's capacity go to ``overflow`` (or wait when None).
    capacity_per_week: int | None = Field(default=None, ge=0)
    overflow: str | None = None


class RoutingConfig(Section):
    rules: list[RouteRule] = Field(default_factory=list, max_length=100)
    default_route: str = "self_serve"
    routes: dict[str, RouteConfig] = Field(
        default_factory=lambda: {"sales": RouteConfig(), "self_serve": RouteConfig()}
    )

    @model_validator(mode="after")
    def _routes_are_declared(self) -> RoutingConfig:
        known = set(self.routes)
        named = [("default_route", self.default_route)]
        named += [(f"rules[{r.name}].route", r.route) for r in self.rules]
        named += [(f"routes.{k}.overflow", v.overflow) for k, v in self.routes.items()]
        bad = [f"{where}={name!r}" for where, name in named if name and name not in known]
        if bad:
            raise ValueError(
                f"every route must be declared under 'routes' ({', '.join(sorted(known))}). Got "
                f"{', '.join(bad)}; add it to routes or fix the name."
            )
        return self


class SinkConfig(Section):
    # duckdb: a file (the embedded default); postgres: a libpq URI (psycopg, extra 'postgres')
    kind: Literal["duckdb", "postgres"] = "duckdb"
    path: str = "outputs/crm.duckdb"
    # e.g. postgresql://user@localhost:5432/crm; PROPENSITY_CRM_DSN wins when set
    dsn: str | None = None
    db_schema: str = Field(default="public", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    current_table: str = Field(default="pql_current", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    history_table: str = Field(default="pql_history", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CrmConfig(Section):
    """CRM outputs: lifecycle, routing, field names and the sink (see docs/crm.md)."""

    lifecycle: LifecycleConfig = LifecycleConfig()
    routing: RoutingConfig = RoutingConfig()
    sink: SinkConfig = SinkConfig()
    preset: Literal["generic", "salesforce", "hubspot"] = "generic"
    score_decimals: int = Field(default=2, ge=0, le=6)
    # conversions after a PQL count for outcomes only within this long (the label horizon)
    outcome_horizon: PositiveDuration = timedelta(days=30)
    # alert when realized precision is below training's promise by more than this share
    alert_drop: float = Field(default=0.3, gt=0, lt=1)
