"""Which source column holds each canonical column: an export preset, then close names.

Each input's schema is read (no full scan). For the events, every preset is tried and the one
that finds all required columns, and most optional ones, wins (canonical first on a tie). A
column no preset finds is looked up among common spellings (``eventName``, ``occurred_at``,
``distinct_id`` ...), compared without case and punctuation, then among close names. Explicit
choices (``preset``, ``columns``) always win over detection.

>>> detect_mapping(con, "exports/events/", "users.csv").preset  # doctest: +SKIP
<Preset.segment: 'segment'>
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb

from propensity.config import Preset
from propensity.contract import TABLES, source_candidates
from propensity.errors import DataContractError
from propensity.io.sources import describe, open_source

__all__ = ["ColumnMapping", "detect_mapping", "parse_column_options"]

# Common spellings of each canonical column, compared without case and punctuation.
_SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "events": {
        "user_id": ("userid", "user", "uid", "distinctid", "customerid", "memberid", "personid",
                    "visitorid", "contactid", "anonymousid"),
        "event": ("eventname", "eventtype", "action", "name", "type", "eventaction", "activity"),
        "timestamp": ("time", "ts", "eventtime", "occurredat", "createdat", "datetime",
                      "eventtimestamp", "receivedat", "sentat", "eventdate", "date", "happenedat",
                      "clienteventtime", "servertime"),
        "account_id": ("groupid", "account", "accountid", "orgid", "organizationid",
                       "organisationid", "companyid", "teamid", "workspaceid", "tenantid"),
        "properties": ("eventproperties", "props", "attributes", "payload", "data", "metadata",
                       "context"),
    },
    "users": {
        "user_id": ("userid", "id", "user", "uid", "distinctid", "customerid", "memberid",
                    "personid", "contactid"),
        "signup_at": ("signedupat", "signupdate", "signup", "signuptime", "createdat",
                      "registeredat", "registrationdate", "trialstart", "trialstartedat",
                      "trialstartat", "joinedat", "joindate", "firstseen", "firstseenat",
                      "startedat", "created", "datecreated"),
        "email": ("emailaddress", "mail", "useremail", "e_mail"),
        "email_domain": ("domain", "emaildomain", "companydomain"),
        "account_id": ("groupid", "account", "accountid", "orgid", "organizationid",
                       "organisationid", "companyid", "teamid", "workspaceid", "tenantid"),
    },
    "conversions": {
        "user_id": ("userid", "user", "uid", "distinctid", "customerid", "memberid", "personid",
                    "contactid"),
        "converted_at": ("paidat", "firstpaymentat", "subscriptionstartedat", "purchasedat",
                         "upgradedat", "conversiondate", "paymentdate", "subscribedat",
                         "convertedon", "paidon", "createdat", "timestamp", "time", "date",
                         "startedat"),
    },
}  # fmt: skip


@dataclass(frozen=True)
class ColumnMapping:
    """A detected column mapping: the preset, per-table overrides, and how each was found."""

    preset: Preset
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    found: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> canonical -> source
    notes: tuple[str, ...] = ()


def parse_column_options(options: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``["events.event=event_name", ...]`` as ``{"events": {"event": "event_name"}}``.

    >>> parse_column_options(["events.event=name", "users.signup_at=created"])
    {'events': {'event': 'name'}, 'users': {'signup_at': 'created'}}
    """
    out: dict[str, dict[str, str]] = {}
    problems = []
    for option in options:
        match = re.fullmatch(r"\s*(\w+)\.(\w+)\s*=\s*(.+?)\s*", option)
        table, column = (match.group(1), match.group(2)) if match else ("", "")
        known = {c.name for c in TABLES[table].columns} if table in TABLES else set()
        if match is None or column not in known:
            problems.append(
                f"--column must be TABLE.COLUMN=SOURCE with TABLE one of events, users, "
                f"conversions and COLUMN a canonical column of it (e.g. events.event=event_name). "
                f"Got {option!r} instead."
            )
            continue
        out.setdefault(table, {})[column] = match.group(3)
    if problems:
        raise DataContractError(problems)
    return out


def detect_mapping(
    con: duckdb.DuckDBPyConnection,
    events: str,
    users: str | None,
    conversions: str | None,
    *,
    preset: Preset | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    fmt: str = "auto",
) -> ColumnMapping:
    """Detect the preset and column overrides for the given inputs (explicit choices win).

    Raises :class:`DataContractError` naming every required column it cannot place, with the
    columns found and the ``--column`` option that maps it.
    """
    given = {t: dict(c) for t, c in (columns or {}).items()}
    schemas = {
        table: describe(con, open_source(table, path, fmt))
        for table, path in (("events", events), ("users", users), ("conversions", conversions))
        if path is not None
    }
    chosen = preset if preset is not None else _best_preset(schemas["events"], given.get("events"))
    overrides: dict[str, dict[str, str]] = {}
    found: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    problems: list[str] = []
    for table, schema in schemas.items():
        explicit = given.get(table, {})
        for column in TABLES[table].columns:
            if column.name == "email_domain" and "email" in found.get(table, {}):
                continue  # the address gives the domain
            candidates = source_candidates(table, column.name, chosen, explicit)
            hit = next((c for c in candidates if c in schema), None)
            how = "preset" if hit is not None else ""
            if hit is None and column.name not in explicit:
                hit = _by_name(table, column.name, schema, taken=found.get(table, {}).values())
                if hit is not None and column.kind == "json" and not _json_like(schema[hit]):
                    hit = None  # a column named "data" that holds no JSON object
                how = "name"
            if hit is None:
                if column.required:
                    problems.append(
                        f"{table}: cannot tell which column holds {column.name!r} (found "
                        f"{', '.join(schema)}). Name it with --column "
                        f"{table}.{column.name}=<source column>."
                    )
                continue
            found.setdefault(table, {})[column.name] = hit
            if column.name in explicit or how == "name":
                overrides.setdefault(table, {})[column.name] = hit
            if how == "name" and hit != column.name:
                notes.append(f"{table}.{column.name} <- {hit!r} (by its name)")
    if problems:
        raise DataContractError(problems)
    return ColumnMapping(chosen, overrides, found, tuple(notes))


def _best_preset(schema: Mapping[str, str], explicit: Mapping[str, str] | None) -> Preset:
    """The preset finding every required events column and the most optional ones."""

    def score(preset: Preset) -> tuple[int, int]:
        hits = [
            (column.required, any(c in schema for c in source_candidates(
                "events", column.name, preset, dict(explicit or {}))))
            for column in TABLES["events"].columns
        ]  # fmt: skip
        return sum(r and h for r, h in hits), sum(h for _, h in hits)

    return max(Preset, key=lambda p: score(p))  # max keeps the first (canonical) on a tie


def _json_like(dtype: str) -> bool:
    upper = dtype.upper()
    return upper in ("JSON", "VARCHAR") or upper.startswith(("STRUCT", "MAP"))


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _by_name(table: str, column: str, schema: Mapping[str, str], taken: object) -> str | None:
    """A source column spelled like ``column`` or one of its synonyms, else a close name."""
    used = set(taken) if taken is not None else set()  # type: ignore[call-overload]
    free = [c for c in schema if c not in used]
    by_norm = {_norm(c): c for c in free}
    for name in (_norm(column), *_SYNONYMS[table].get(column, ())):
        if name in by_norm:
            return by_norm[name]
    close = difflib.get_close_matches(_norm(column), list(by_norm), n=1, cutoff=0.85)
    return by_norm[close[0]] if close else None
