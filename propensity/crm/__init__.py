"""CRM outputs of the daily score: lifecycle, routing, the current and history tables, field
presets and measured outcomes. Pure: tables in, tables out; sinks live in ``propensity.io``."""

from propensity.crm.current import CURRENT_COLUMNS, current_table, reason_texts
from propensity.crm.history import HISTORY_COLUMNS, HISTORY_KEY, history_rows
from propensity.crm.lifecycle import advance, empty_state, thresholds
from propensity.crm.presets import PRESETS, crm_fields, external_id
from propensity.crm.routing import WAITING, route, rule_routes
from propensity.crm.segments import domain_class, segments

__all__ = [
    "CURRENT_COLUMNS",
    "HISTORY_COLUMNS",
    "HISTORY_KEY",
    "PRESETS",
    "WAITING",
    "advance",
    "crm_fields",
    "current_table",
    "domain_class",
    "empty_state",
    "external_id",
    "history_rows",
    "reason_texts",
    "route",
    "rule_routes",
    "segments",
    "thresholds",
]
