"""One self-contained HTML page: inline CSS, images embedded as base64 PNG, no script, no URL.

The page must open offline from an MLflow artifact view or an email attachment, so nothing in it
points outside the file: no ``<script>``, no ``<link>``, no web font, no remote image. Every piece
of text goes through :func:`text`, which escapes it and blanks anything shaped like an email
address, so a stray address in a rule description can never reach the page.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Section",
    "fmt_number",
    "image",
    "paragraph",
    "render_page",
    "table",
    "text",
]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_URL = re.compile(r"\b(?:https?|ftp)://\S+", re.IGNORECASE)

# Plain CSS, no at-rules: nothing here can fetch anything, and the page stays readable in print.
_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.85; }
nav { padding: 8px 32px; background: #e8ecf1; font-size: 14px; }
nav a { margin-right: 14px; color: #1f3a5f; text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1200px; }
section { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 8px 20px 16px;
  margin: 18px 0; }
h2 { color: #1f3a5f; border-bottom: 1px solid #dde2e8; padding-bottom: 6px; }
h3 { color: #33506f; margin-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0 12px 0; font-size: 13px; }
th, td { border: 1px solid #dde2e8; padding: 4px 8px; text-align: right; }
th { background: #eef1f5; }
td:first-child, th:first-child, td.l, th.l { text-align: left; }
figure { display: inline-block; margin: 8px 12px 8px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.callout { background: #eef6ee; border-left: 4px solid #3c8d3c; padding: 8px 12px; }
.warn { background: #fff4e5; border-left: 4px solid #d98c00; padding: 8px 12px; }
.alert { background: #fdecea; border-left: 4px solid #c62828; color: #8e1b1b; padding: 8px 12px;
  font-weight: bold; }
.headline { font-size: 17px; line-height: 1.5; }
.muted { color: #666; font-size: 13px; }
"""


@dataclass(frozen=True)
class Section:
    """One titled block of the report; ``body`` is HTML built with this module's helpers."""

    id: str
    title: str
    body: str


def text(value: Any) -> str:
    """Escape ``value`` for HTML, with email addresses and URLs replaced by ``[removed]``."""
    cleaned = _URL.sub("[removed]", _EMAIL.sub("[removed]", str(value)))
    return html.escape(cleaned, quote=True)


def paragraph(value: Any, css: str | None = None) -> str:
    """A ``<p>`` of escaped text, optionally with a class (``callout``, ``warn``, ``alert`` (red),
    ``headline``, ``muted``)."""
    attr = f' class="{css}"' if css else ""
    return f"<p{attr}>{text(value)}</p>"


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number for people: integers without decimals, NaN and None as a dash.

    >>> fmt_number(0.123456), fmt_number(12.0), fmt_number(float("nan"))
    ('0.123', '12', '–')
    """
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or (isinstance(value, numbers.Real) and math.isnan(float(value))):
        return "–"
    if isinstance(value, numbers.Real):
        if float(value).is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{digits - 1}f}"
    return str(value)


def image(png: bytes, alt: str, caption: str | None = None, width: int | None = None) -> str:
    """An ``<img>`` holding ``png`` inline as a data URI, in a ``<figure>`` with a caption."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{int(width)}"' if width else ""
    cap = f"<figcaption>{text(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{text(alt)}"{size} src="data:image/png;base64,{data}">{cap}</figure>'


def table(
    frame: pd.DataFrame,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    headers: Mapping[str, str] | None = None,
    left: Sequence[str] = (),
) -> str:
    """An HTML table of ``frame``; cells through ``formats[column]`` else :func:`fmt_number`.

    Numbers are right-aligned; the first column and the ``left`` ones (text) are left-aligned.
    """
    formats = formats or {}
    headers = headers or {}
    cls = {c: ' class="l"' if c in left else "" for c in frame.columns}
    head = "".join(f"<th{cls[c]}>{text(headers.get(c, c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            shown = formats.get(column, fmt_number)(value)
            cells.append(f"<td{cls[column]}>{text(shown)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: header, a table of contents of in-page anchors, then the sections."""
    nav = "".join(f'<a href="#{s.id}">{text(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{text(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{_CSS}</style></head>"
        f"<body><header><h1>{text(title)}</h1><p>{text(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
