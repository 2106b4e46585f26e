"""A readable PQL rule the data supports: at most three conditions, in the rules grammar.

The rule is learned on the training slice only, for a target volume (the fraction of trial
users it should flag), so that it can be judged against the model and the user's rules at the
same volume on the later test slice. How:

1. **Conditions** come from the readable feature columns of the learned spec: counts in a
   window, active days and sessions, hours since the last event (``<=``), milestones, active
   teammates, properties, and who the user is (email domain class, user columns). Thresholds
   are round numbers ("at least 5", "within 24 hours") inside the column's observed range.
   Each condition is evaluated with the rules grammar itself, so the pasted rule flags exactly
   the users it was learned on.
2. **Search** (earlier 70% of the training users by cutoff time): a beam search over
   ``and``/``or`` combinations of up to ``max_conditions`` conditions, keeping rules that flag
   at least the target volume, scored by the Wilson lower bound of their precision.
3. **Choice** (the later 30%): every rule the beam kept is judged on users it was not searched
   on, later in time, as the test slice will be; the one with the best lower bound of
   precision there (flagging at least 80% of the target volume) is the suggestion. This keeps
   a rule that only fitted the search users' noise from being suggested.

>>> rule = suggest_rule(train_rows, spec, volume=0.05)  # doctest: +SKIP
>>> rule.expr  # doctest: +SKIP
'n_invite_accepted_all >= 1 and active_days >= 4'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from propensity.baselines.grammar import Rule
from propensity.baselines.rules import RuleBaseline
from propensity.discover.intervals import wilson_interval
from propensity.errors import ConfigError, InsufficientDataError
from propensity.features import FeatureSpec

__all__ = ["SuggestedRule", "rule_conditions", "suggest_rule"]

_NICE = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)
_BEAM = 60
_SEARCH_SHARE = 0.7  # earlier users for the search, later ones for the choice
_Z = 1.0  # lower bound used to score (one standard error): precise rules, not lucky ones
_MIN_SUPPORT = 20


@dataclass(frozen=True)
class SuggestedRule:
    """A rule learned at a target volume, ready to paste under ``baselines: rules:``.

    ``volume`` is the target fraction of trial users; ``flagged``/``precision`` are on the whole
    training slice (in-sample, for orientation only: the test slice judges it).
    """

    name: str
    expr: str
    description: str
    volume: float
    flagged: float
    precision: float
    conditions: int

    def baseline(self) -> RuleBaseline:
        """The unfitted rules baseline, to be judged like any other."""
        return RuleBaseline(expr=self.expr, name=self.name, description=self.description)

    def yaml(self) -> str:
        """The config snippet to paste under ``baselines:``."""
        return (
            "rules:\n"
            f"  - name: {self.name}\n"
            f"    expr: {self.expr}\n"
            f"    description: {self.description}\n"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expr": self.expr,
            "description": self.description,
            "volume": self.volume,
            "train_flagged": self.flagged,
            "train_precision": self.precision,
            "conditions": self.conditions,
        }


def suggest_rule(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    volume: float,
    *,
    max_conditions: int = 3,
    name: str = "suggested",
    description: str | None = None,
) -> SuggestedRule:
    """Learn the rule of at most ``max_conditions`` conditions that best flags ``volume`` users.

    ``frame``: the training slice's labelled feature rows (one per user, ``cutoff_at`` and
    ``label`` included); ``volume``: the fraction of them the rule should flag (at least).
    """
    if not 0 < volume < 1:
        raise ConfigError(
            f"The target volume of a suggested rule must be a fraction in (0, 1). Got {volume}; "
            f"set discover.volume (e.g. 0.05) or a capacity/top_fraction threshold policy."
        )
    if not 1 <= max_conditions <= 3:
        raise ConfigError(
            f"discover.max_conditions must be 1, 2 or 3. Got {max_conditions}; a rule a sales "
            f"rep can read has at most three conditions."
        )
    y = frame["label"].to_numpy(dtype=bool)
    search = _search_rows(frame)
    if y[search].sum() < 10 or y[~search].sum() < 5:
        raise InsufficientDataError(
            f"A suggested rule needs at least 10 converters among the earlier training users and "
            f"5 among the later ones. Got {int(y[search].sum())} and {int(y[~search].sum())}; "
            f"load a longer period."
        )
    texts, masks = rule_conditions(frame, spec, search)
    kept = _beam(masks[:, search], y[search], volume, max_conditions)
    best = _choose(kept, masks[:, ~search], y[~search], volume)
    expr = _text(best, texts)
    flag = Rule.parse(expr).evaluate(frame)
    return SuggestedRule(
        name=name,
        expr=expr,
        description=description
        or f"learned by propensity discover on the training slice for {volume:.1%} of trials",
        volume=volume,
        flagged=float(flag.mean()),
        precision=float(y[flag].mean()) if flag.any() else float("nan"),
        conditions=len(best[0]),
    )


# ---- conditions --------------------------------------------------------------------------------
def rule_conditions(
    frame: pd.DataFrame, spec: FeatureSpec, rows: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """Readable conditions over ``spec``'s columns and a boolean matrix (conditions x rows).

    Thresholds come from ``rows`` (default: all); conditions that hold for fewer than 20 of
    them, or fail for fewer, and duplicates (same rows flagged) are dropped.
    """
    rows = np.ones(len(frame), dtype=bool) if rows is None else rows
    y = frame["label"].to_numpy(dtype=float) if "label" in frame else np.zeros(len(frame))
    texts: list[str] = []
    # since-signup counts first: when a window holds the same users, the plainer one is kept
    infos = sorted(
        spec.features, key=lambda f: f.family in ("counts", "account") and f.window_s is not None
    )
    for info in infos:
        if info.name not in frame:
            continue
        texts += _column_conditions(info, frame[info.name], rows, y, spec)
    masks = np.array([Rule.parse(t).evaluate(frame) for t in texts], dtype=bool)
    if masks.size == 0:
        raise InsufficientDataError(
            "No readable condition over the feature table holds for at least 20 training users; "
            "a rule cannot be suggested. Load more data or enable the counts family."
        )
    support = masks[:, rows].sum(axis=1)
    ok = (support >= _MIN_SUPPORT) & (support <= rows.sum() - _MIN_SUPPORT)
    packed = np.packbits(masks[:, rows], axis=1)
    _, first = np.unique(packed, axis=0, return_index=True)
    keep = np.zeros(len(texts), dtype=bool)
    keep[first] = True
    keep &= ok
    return [t for t, k in zip(texts, keep, strict=True) if k], masks[keep]


def _column_conditions(
    info: Any, column: pd.Series, rows: np.ndarray, y: np.ndarray, spec: FeatureSpec
) -> list[str]:
    name, family, kind = info.name, info.family, info.kind
    if name in spec.categorical:
        return _level_conditions(name, column, rows, y)
    readable = (
        (family == "counts" and kind in ("count", "events"))
        or (family == "activity" and kind in ("active_days", "sessions", "longest_streak_days"))
        or (family == "recency" and kind == "hours_since_last_event")
        or family in ("order", "account", "properties")
        or (family == "fit" and kind == "user_numeric")
        or (family == "diversity" and kind == "distinct_events")
    )
    if not readable:
        return []
    values = column.to_numpy(dtype=float)[rows]
    values = values[~np.isnan(values)]
    if family == "order":
        return [f"{name} == 1"] if values.size and values.max() >= 1 else []
    whole = bool(np.all(values == np.round(values)))
    if family == "recency":
        return [f"{name} <= {_show(v)}" for v in _round_numbers(values, whole)]
    return [f"{name} >= {_show(v)}" for v in _round_numbers(values[values > 0], whole)]


def _level_conditions(name: str, column: pd.Series, rows: np.ndarray, y: np.ndarray) -> list[str]:
    """``col in (...)`` for the 1, 2, ... best converting levels (by rate on ``rows``)."""
    levels = column.astype(object).to_numpy()[rows]
    frame = pd.DataFrame({"level": levels, "y": y[rows]}).dropna()
    if frame.empty:
        return []
    rates = frame.groupby("level")["y"].mean().sort_values(ascending=False, kind="stable")
    ordered = [str(v) for v in rates.index]
    out = []
    for k in range(1, len(ordered)):
        quoted = ", ".join("'" + v.replace("'", "") + "'" for v in ordered[:k])
        out.append(f"{name} in ({quoted})")
    return out


def _round_numbers(values: np.ndarray, whole: bool = False) -> list[float]:
    """Round thresholds between the 1st and 99th percentile of ``values`` (whole numbers only
    when every value is whole: "at least 2.5 teammates" reads as a bug)."""
    if values.size == 0:
        return []
    low, high = np.quantile(values, [0.01, 0.99])
    low = max(low, 1e-9)
    out = []
    for exponent in range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1):
        for base in _NICE:
            v = round(base * 10.0**exponent, 10)
            if low <= v <= high and (not whole or v == round(v)):
                out.append(v)
    return sorted(set(out))


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# ---- search ------------------------------------------------------------------------------------
def _search_rows(frame: pd.DataFrame) -> np.ndarray:
    """The earlier users (by cutoff time, then user id) for the search; the rest choose."""
    order = np.lexsort(
        (frame["user_id"].astype(str).to_numpy(), pd.to_datetime(frame["cutoff_at"]).to_numpy())
    )
    search = np.zeros(len(frame), dtype=bool)
    search[order[: int(round(len(frame) * _SEARCH_SHARE))]] = True
    return search


Candidate = tuple[tuple[int, ...], str, np.ndarray]  # condition indices, operators, packed flags


def _pack(flags: np.ndarray) -> np.ndarray:
    """Boolean rows as bits in 64-bit words (8x fewer elements to count than bytes)."""
    packed = np.packbits(np.atleast_2d(flags), axis=1)
    pad = (-packed.shape[1]) % 8
    packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


_BITS_IN_BYTE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _count(bits: np.ndarray) -> np.ndarray:
    """Set bits per row (numpy 2's popcount; a byte table on numpy 1.26)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(bits).sum(axis=-1)
    as_bytes = bits.view(np.uint8)
    return _BITS_IN_BYTE[as_bytes].sum(axis=-1, dtype=np.int64)


def _score(tp: np.ndarray, n: np.ndarray) -> np.ndarray:
    return wilson_interval(tp, np.maximum(n, 1), _Z)[0]


def _beam(masks: np.ndarray, y: np.ndarray, volume: float, max_conditions: int) -> list[Candidate]:
    """Every rule that flags at least ``volume`` of the rows, from a beam over and/or."""
    bits = _pack(masks)
    ybits = _pack(y)[0]
    need = int(np.ceil(volume * len(y)))
    level: list[Candidate] = [((j,), "", bits[j]) for j in range(len(bits))]
    level = _prune(level, ybits, need)
    kept = [c for c in level if _count(c[2]) >= need]
    for _ in range(max_conditions - 1):
        grown: dict[tuple[tuple[int, ...], str], np.ndarray] = {}
        for used, ops, flags in level:
            # "and" only narrows: it grows rules that flag enough; "or" grows those that do not
            for op in ("&",) if _count(flags) >= need else ("|",):
                combined = (flags & bits) if op == "&" else (flags | bits)
                n, tp = _count(combined), _count(combined & ybits)
                score = np.where(n >= need, _score(tp, n), _score(tp, n) - 1)
                score[list(used)] = -np.inf
                for j in np.argsort(-score, kind="stable")[:_BEAM]:
                    if np.isfinite(score[j]):
                        grown.setdefault(_canonical(used + (int(j),), ops + op), combined[j])
        level = _prune([(u, o, f) for (u, o), f in grown.items()], ybits, need)
        kept += [c for c in level if _count(c[2]) >= need]
    if not kept:
        raise InsufficientDataError(
            f"No rule of up to {max_conditions} conditions flags {volume:.1%} of the training "
            f"users. Lower discover.volume or allow more conditions."
        )
    return kept


def _canonical(used: tuple[int, ...], ops: str) -> tuple[tuple[int, ...], str]:
    """One spelling per rule: ``a and b`` and ``b and a`` flag the same users."""
    if len(set(ops)) <= 1:
        return tuple(sorted(used)), ops
    # (a op1 b) op2 c: the first two commute
    return (*sorted(used[:2]), *used[2:]), ops


def _prune(rules: list[Candidate], ybits: np.ndarray, need: int) -> list[Candidate]:
    """The best ``_BEAM`` rules at or above the volume, and the best ``_BEAM`` below it."""
    if not rules:
        return []
    flags = np.array([r[2] for r in rules])
    n, tp = _count(flags), _count(flags & ybits)
    score = _score(tp, n)
    order = np.lexsort((np.arange(len(rules)), -score))
    big = [rules[i] for i in order if n[i] >= need][:_BEAM]
    small = [rules[i] for i in order if _MIN_SUPPORT <= n[i] < need][:_BEAM]
    return big + small


def _choose(kept: list[Candidate], masks: np.ndarray, y: np.ndarray, volume: float) -> Candidate:
    """The kept rule with the best precision (lower bound) on the later users."""
    need = 0.8 * volume * len(y)
    best, best_score = kept[0], -np.inf
    for candidate in kept:
        flags = _evaluate(candidate, masks)
        n = flags.sum()
        if n < need:
            continue
        score = float(_score(np.array([y[flags].sum()]), np.array([n]))[0])
        if score > best_score + 1e-12:
            best, best_score = candidate, score
    return best


def _evaluate(candidate: Candidate, masks: np.ndarray) -> np.ndarray:
    used, ops, _ = candidate
    flags = masks[used[0]].copy()
    for j, op in zip(used[1:], ops, strict=True):
        flags = (flags & masks[j]) if op == "&" else (flags | masks[j])
    return flags


def _text(candidate: Candidate, texts: list[str]) -> str:
    """The rule text, left to right, with parentheses where ``and`` follows an ``or``."""
    used, ops, _ = candidate
    out = texts[used[0]]
    for j, op in zip(used[1:], ops, strict=True):
        if op == "&":
            out = f"({out}) and {texts[j]}" if " or " in out else f"{out} and {texts[j]}"
        else:
            out = f"{out} or {texts[j]}"
    return str(Rule.parse(out))
