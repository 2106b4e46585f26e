"""The simulated product's vocabulary: event types, email domains, roles and channels.

Only the simulator, configs and tests know these names; library code never hard-codes them.
Codes are positions in the tuples, so arrays of small ints stand for names until writing.
"""

from __future__ import annotations

__all__ = [
    "ALL_EVENTS",
    "CHANNELS",
    "DOMAIN_CLASSES",
    "EDUCATION_SUFFIX",
    "ENTERPRISE_DOMAINS",
    "EVENTS",
    "FREE_MAIL_DOMAINS",
    "INTERNAL_DOMAIN",
    "POST_CONVERSION_EVENTS",
    "ROLES",
    "SEAT_ROLES",
    "TAIL_EVENTS",
    "TEAM_EVENTS",
    "TRIAL_EVENTS",
    "code",
    "domain_class",
]

# In-trial vocabulary first, then the events that only a paying customer produces.
TRIAL_EVENTS: tuple[str, ...] = (
    "page_view",
    "login",
    "doc_created",
    "doc_shared",
    "comment_added",
    "message_sent",
    "teammate_invited",
    "invite_accepted",
    "integration_connected",
    "plan_limit_hit",
    "pricing_viewed",
    "export_done",
    "help_viewed",
)
POST_CONVERSION_EVENTS: tuple[str, ...] = ("subscription_started", "invoice_paid", "seat_added")
EVENTS: tuple[str, ...] = TRIAL_EVENTS + POST_CONVERSION_EVENTS

# The long tail a real product logs: every screen and button of a big app, most of them rare.
# Only worlds built with ``tail_events`` use them; their codes follow the core EVENTS.
_TAIL_OBJECTS = (
    "dashboard", "report", "chart", "filter", "template", "folder", "tag", "workspace",
    "project", "task", "calendar", "note", "widget", "board", "notification", "setting",
    "profile", "theme", "shortcut", "api_key", "webhook", "thread", "attachment", "search",
)  # fmt: skip
_TAIL_ACTIONS = (
    "opened", "viewed", "created", "edited", "deleted", "renamed", "duplicated", "moved",
    "exported", "archived", "starred", "pinned", "filtered", "sorted",
)  # fmt: skip
_TAIL_NAMES = tuple(f"{o}_{a}" for o in _TAIL_OBJECTS for a in _TAIL_ACTIONS)
# Most popular first; a fixed stride (coprime with 336) mixes objects and actions in that order.
TAIL_EVENTS: tuple[str, ...] = tuple(_TAIL_NAMES[(r * 97) % len(_TAIL_NAMES)] for r in range(336))
# Events only the task worlds (accounts, expansion) log; their codes follow the long tail, so no
# trial world's codes move.
TEAM_EVENTS: tuple[str, ...] = ("billing_viewed",)
ALL_EVENTS: tuple[str, ...] = EVENTS + TAIL_EVENTS + TEAM_EVENTS
_CODES = {name: i for i, name in enumerate(ALL_EVENTS)}

ROLES: tuple[str, ...] = ("engineer", "manager", "designer", "student", "founder")
SEAT_ROLES: tuple[str, ...] = ("admin", "member", "viewer")  # a member's rights in its account
CHANNELS: tuple[str, ...] = ("organic", "paid_search", "referral", "partner")
DOMAIN_CLASSES: tuple[str, ...] = ("free_mail", "corporate", "enterprise", "education", "internal")

FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
)
# Large companies whose teams trial the product; configs pass this list to the feature engine.
ENTERPRISE_DOMAINS: tuple[str, ...] = (
    "globex.com",
    "initech.com",
    "umbrella-corp.com",
    "hooli.com",
    "massive-dynamic.com",
    "wayne-enterprises.com",
    "stark-industries.com",
    "cyberdyne.com",
    "tyrell.com",
    "soylent.com",
)
CORPORATE_WORDS: tuple[str, ...] = (
    "acme", "bluth", "vandelay", "dunder", "pied", "wonka", "sterling", "gekko", "prestige",
    "oceanic", "monarch", "zorg", "nakatomi", "gringotts", "aperture", "vehement",
)  # fmt: skip
EDUCATION_SUFFIX = ".edu"
INTERNAL_DOMAIN = "propensity-internal.test"


def code(event: str) -> int:
    """The integer code of an event name (core events first, then the long tail).

    >>> code("login"), code("dashboard_opened")
    (1, 16)
    """
    return _CODES[event]


def domain_class(domain: str) -> str:
    """The firmographic class of an email domain, as the truth formula sees it.

    >>> domain_class("acme-12.com"), domain_class("gmail.com"), domain_class("uni-3.edu")
    ('corporate', 'free_mail', 'education')
    """
    domain = domain.lower()
    if domain == INTERNAL_DOMAIN:
        return "internal"
    if domain in FREE_MAIL_DOMAINS:
        return "free_mail"
    if domain in ENTERPRISE_DOMAINS:
        return "enterprise"
    if domain.endswith(EDUCATION_SUFFIX):
        return "education"
    return "corporate"
