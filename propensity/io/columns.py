"""SQL expressions that read one source column into its canonical form.

Ids, text and JSON are spelled the same whatever type the file gave them, and no expression
ever lets an email address through: an id that is one becomes its pseudonym, an address in a
name or a JSON value is masked, and the email column gives only its domain.
"""

from __future__ import annotations

from propensity.io.sources import ident, sql_string

__all__ = ["EMAIL_SQL", "PSEUDONYM", "as_text", "domain_text", "json_text", "key_text", "masked"]

# RE2 syntax; matches what propensity.errors.EMAIL hides in messages
EMAIL_SQL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
PSEUDONYM = "sha256:"  # prefix of an id that was an email address (see key_text)


def as_text(src: str, dtype: str) -> str:
    """A plain column as trimmed text, spelled the same whatever type the file gave it.

    JSON strings lose their quotes (a JSONL column mixing 7 and "7" is typed JSON) and whole
    floats lose their ".0" (pandas writes integer ids with a missing value as float64), so that
    7, 7.0 and "7" are one user in every table.
    """
    col = ident(src)
    upper = dtype.upper()
    if upper == "JSON":
        col = f"json_extract_string({col}, '$')"
    elif upper in ("DOUBLE", "FLOAT") or upper.startswith("DECIMAL"):
        whole = f"isfinite({col}) AND abs({col}) < 1e18 AND {col} = trunc({col})"
        integer = f"CAST(CAST({col} AS BIGINT) AS VARCHAR)"
        col = f"CASE WHEN {whole} THEN {integer} ELSE CAST({col} AS VARCHAR) END"
    trimmed = f"NULLIF(TRIM(CAST({col} AS VARCHAR)), '')"
    if upper != "VARCHAR":
        return trimmed
    # TRIM decodes every value (most of the cost of reading an id column); it removes Unicode
    # space separators only, and a value of ASCII characters (as many characters as bytes) that
    # starts after '!' and does not end in a space has none at either end: kept as it is.
    plain = f"{col} >= '!' AND NOT suffix({col}, ' ') AND strlen({col}) = length({col})"
    return f"CASE WHEN {plain} THEN {col} ELSE {trimmed} END"


def key_text(src: str, dtype: str) -> str:
    """An id column as text, with an id that holds an email address replaced by its pseudonym.

    Many raw logs key users by their email. The address must never be stored, yet the id must
    stay the same user in every table and joinable by a CRM: ``sha256:`` and the SHA-256 of the
    lowercased id, which a CRM can compute from its own email field. Ids without an address
    (no '@', checked first because it is cheap) are kept as they are.
    """
    text = as_text(src, dtype)
    return (
        f"CASE WHEN contains({text}, '@') AND regexp_matches({text}, {sql_string(EMAIL_SQL)}) "
        f"THEN {sql_string(PSEUDONYM)} || sha256(lower({text})) ELSE {text} END"
    )


def json_text(src: str, dtype: str) -> str:
    """A JSON column as text, with any email address in it masked (never stored)."""
    text = ident(src) if dtype.upper() == "VARCHAR" else f"to_json({ident(src)})"
    return masked(f"CAST({text} AS VARCHAR)")


def masked(text: str) -> str:
    """The text expression ``text`` with any email address in it replaced by ``<email>``.

    An event name can hold one ("invited bob@corp.com"): it would reach the vocabulary's
    counts, the unseen events and the feature names. Text without '@' (checked first, cheap)
    is kept as it is.
    """
    return (
        f"CASE WHEN contains({text}, '@') THEN "
        f"regexp_replace({text}, {sql_string(EMAIL_SQL)}, '<email>', 'g') ELSE {text} END"
    )


def domain_text(mapping: dict[str, str], found: dict[str, str]) -> str:
    """The email domain, from email_domain or else from the text after the email's last '@'.

    This is the only expression that ever reads the email column, inside the first projection.
    """
    parts = []
    if "email_domain" in mapping:
        src = mapping["email_domain"]
        parts.append(f"lower({as_text(src, found[src])})")
    if "email" in mapping:
        src = mapping["email"]
        address = as_text(src, found[src])
        parts.append(f"lower(NULLIF(regexp_extract({address}, '@([^@\\s]+)$', 1), ''))")
    if "user_id" in mapping:  # ids that are addresses give the domain too
        src = mapping["user_id"]
        user = as_text(src, found[src])
        parts.append(
            f"CASE WHEN regexp_matches({user}, {sql_string(EMAIL_SQL)}) THEN "
            f"lower(NULLIF(regexp_extract({user}, '@([^@\\s]+)$', 1), '')) END"
        )
    if not parts:
        return "CAST(NULL AS VARCHAR)"
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"
