"""The benchmark's feature families written by hand in lazy Polars, learning included.

A baseline for ``benchmarks/features.py``: the same vocabulary, transitions and feature values
as ``learn_spec`` + ``compute_features`` for the families counts, recency, activity, timing,
transitions and diversity, written as one would in Polars (lazy scans, one join of the events to
the label rows on integer user codes, one sort by row and time, ``shift`` for the previous event,
group-bys for the rest). The benchmark checks its output against ours, column by column.

Definitions (as in ``propensity/features``): a row sees events with ``signup <= ts < cutoff``;
``t`` is seconds since signup; the vocabulary keeps event types seen by ``min_event_support``
users, the ``max_event_types`` most common; transitions are consecutive vocabulary events ranked
by ``|P(label | pair) - P(label | no pair)| * rows_with_pair``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

SCALE = 1_000_000  # event_entropy sums n*ln(n) in integer micro-units, as the SQL does


def learn_and_build(
    events: Path,
    rows: pl.DataFrame,
    *,
    windows_s: tuple[int, ...],
    session_gap_s: int,
    min_support: int,
    max_events: int,
    top_transitions: int,
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], pl.DataFrame]:
    """Vocabulary, transitions and the feature table (``rid`` + named columns) of ``rows``.

    ``rows`` has ``rid`` (0..n-1), ``user_id``, ``signup_at``, ``cutoff_at`` and ``label``.
    """
    r = rows.lazy().with_columns(
        uid=pl.col("user_id").rank("dense").cast(pl.Int32),
        sig=pl.col("signup_at").dt.epoch("s"),
        cut=pl.col("cutoff_at").dt.epoch("s"),
    )
    ev = (
        pl.scan_parquet(events)
        .select(
            "user_id", pl.col("event").cast(pl.Categorical), ts=pl.col("timestamp").dt.epoch("s")
        )
        .join(r.select("rid", "uid", "user_id", "sig", "cut"), on="user_id")
        .filter((pl.col("ts") >= pl.col("sig")) & (pl.col("ts") < pl.col("cut")))
        .select("rid", "uid", "event", t=pl.col("ts") - pl.col("sig"))
        .collect()
    )
    # -- vocabulary: event types seen by enough users, the most common first
    seen = (
        ev.lazy()
        .filter(pl.col("event").is_not_null())
        .group_by("event")
        .agg(users=pl.col("uid").n_unique(), n=pl.len())
        .filter(pl.col("users") >= min_support)
        .with_columns(pl.col("event").cast(pl.String))
        .sort(["users", "n", "event"], descending=[True, True, False])
        .head(max_events)
        .collect()
    )
    vocab = tuple(sorted(seen["event"].to_list()))
    codes = pl.DataFrame({"event": vocab, "k": range(len(vocab))}, schema_overrides={"k": pl.Int64})
    # -- the vocabulary events of every row in time order (ties by name = by code). One packed
    # integer key sorts ~3x faster in Polars than the three columns (rid, t, k).
    k_bits = max(len(vocab), 1).bit_length()
    t_bits = max(int(ev["t"].max() or 0), 1).bit_length()
    if t_bits + k_bits + max(len(rows), 1).bit_length() > 62:
        raise SystemExit("the packed sort key does not fit 63 bits for this data")
    seq = (
        ev.lazy()
        .join(codes.lazy().with_columns(pl.col("event").cast(pl.Categorical)), on="event")
        .select("rid", "k", "t")
        .sort((pl.col("rid") * 2**t_bits + pl.col("t")) * 2**k_bits + pl.col("k"))
        .with_columns(same=pl.col("rid") == pl.col("rid").shift(1))
        .with_columns(
            prev=pl.when("same").then(pl.col("k").shift(1)),
            gap=pl.when("same").then(pl.col("t") - pl.col("t").shift(1)),
        )
        .collect()
    )
    del ev
    transitions = _top_transitions(seq, r, vocab, min_support, top_transitions)
    return vocab, transitions, _features(seq, r, vocab, transitions, windows_s, session_gap_s)


def _top_transitions(seq, r, vocab, min_support, top) -> tuple[tuple[str, str], ...]:  # type: ignore[no-untyped-def]
    labels = r.select("rid", "label")
    total, positives = r.select(pl.len(), pl.col("label").sum()).collect().row(0)
    pairs = (
        seq.lazy()
        .filter(pl.col("prev").is_not_null())
        .select("rid", "prev", "k")
        .unique()
        .join(labels, on="rid")
        .group_by("prev", "k")
        .agg(n_with=pl.len(), pos_with=pl.col("label").sum())
        .filter(pl.col("n_with") >= min_support)
        .collect()
    )
    if pairs.is_empty():
        return ()
    names = np.asarray(vocab, dtype=object)
    n_with = pairs["n_with"].to_numpy().astype(float)
    pos = pairs["pos_with"].to_numpy().astype(float)
    rate_with = pos / n_with
    n_without = total - n_with
    rate_without = np.where(n_without > 0, (positives - pos) / np.maximum(n_without, 1), rate_with)
    score = np.round(np.abs(rate_with - rate_without) * n_with, 9)
    ranked = sorted(
        zip(-score, names[pairs["prev"].to_numpy()], names[pairs["k"].to_numpy()], strict=True)
    )
    return tuple((str(a), str(b)) for _, a, b in ranked[:top])


def _features(seq, r, vocab, transitions, windows_s, gap_s) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    rows = r.select("rid", age=pl.col("cut") - pl.col("sig"))
    s = seq.lazy().join(rows, on="rid")
    wins = [pl.col("t") >= pl.col("age") - w for w in windows_s]
    ix = {e: i for i, e in enumerate(vocab)}
    # per (row, event type): counts per window, first and last time
    per_event = (
        s.group_by("rid", "k")
        .agg(
            *(w.sum().alias(f"n_w{i}") for i, w in enumerate(wins)),
            n_all=pl.len(),
            first=pl.col("t").min(),
            last=pl.col("t").max(),
        )
        .with_columns(
            nlogn=(pl.col("n_all") * pl.col("n_all").log() * SCALE).round().cast(pl.Int64)
        )
    )
    win_names = [*(f"n_w{i}" for i in range(len(windows_s))), "n_all"]

    def at(col: str, i: int) -> pl.Expr:
        return pl.col(col).filter(pl.col("k") == i).first()

    pivot = per_event.group_by("rid").agg(
        *(pl.col(w).sum().alias(f"ne_{w}") for w in win_names),
        pl.col("first").min().alias("first_any"),
        pl.col("last").max().alias("last_any"),
        pl.len().alias("distinct"),
        pl.col("nlogn").sum(),
        *(at(w, i).alias(f"c{i}_{w}") for i in range(len(vocab)) for w in win_names),
        *(at(c, i).alias(f"{c}{i}") for i in range(len(vocab)) for c in ("first", "last")),
    )
    act = s.group_by("rid").agg(
        (pl.col("gap").is_null() | (pl.col("gap") > gap_s)).sum().alias("sessions"),
        pl.col("gap").sum().alias("gap_sum"),
        pl.col("gap").count().alias("gap_n"),
        pl.col("gap").max().alias("gap_max"),
        *(
            ((pl.col("prev") == ix[a]) & (pl.col("k") == ix[b])).sum().alias(f"tr{j}")
            for j, (a, b) in enumerate(transitions)
        ),
    )
    days = (
        s.select("rid", day=pl.col("t") // 86400)
        .unique()
        .sort("rid", "day")
        .with_columns(island=pl.col("day") - pl.int_range(pl.len()).over("rid"))
        .group_by("rid", "island")
        .agg(n=pl.len())
        .group_by("rid")
        .agg(active_days=pl.col("n").sum(), longest=pl.col("n").max())
    )
    wide = (
        rows.join(pivot, on="rid", how="left")
        .join(act, on="rid", how="left")
        .join(days, on="rid", how="left")
        .sort("rid")
    )
    return wide.select("rid", *_columns(vocab, transitions, windows_s)).collect()


def _columns(vocab, transitions, windows_s) -> list[pl.Expr]:  # type: ignore[no-untyped-def]
    """The final expressions, named ``{kind}:{detail}`` and renamed by the benchmark."""
    age = pl.col("age").cast(pl.Float64)
    zero = pl.lit(0)
    n_all = pl.col("ne_n_all").fill_null(zero).cast(pl.Float64)
    active = pl.col("active_days").fill_null(zero)
    sessions = pl.col("sessions").fill_null(zero).cast(pl.Float64)
    win_names = [*(f"n_w{i}" for i in range(len(windows_s))), "n_all"]
    out: list[pl.Expr] = []
    for w in win_names:
        out.append(pl.col(f"ne_{w}").fill_null(zero).cast(pl.Float64).alias(f"events:{w}"))
        for i in range(len(vocab)):
            out.append(pl.col(f"c{i}_{w}").fill_null(zero).cast(pl.Float64).alias(f"count:{i}:{w}"))
    for i in range(len(vocab)):
        rate = pl.col(f"c{i}_n_all").fill_null(zero) / pl.max_horizontal(active, 1).cast(pl.Float64)
        out.append(rate.alias(f"rate:{i}"))
    out.append(((age - pl.col("last_any")) / 3600.0).alias("hours_since_last_event"))
    for i in range(len(vocab)):
        out.append(((age - pl.col(f"last{i}")) / 3600.0).alias(f"hours_since_last:{i}"))
    out.append(((age - pl.col("first_any")) / 86400.0).alias("tenure_days"))
    out.append((age / 86400.0).alias("cutoff_age_days"))
    out.append(active.cast(pl.Float64).alias("active_days"))
    out.append(sessions.alias("sessions"))
    out.append((n_all / pl.when(sessions > 0).then(sessions)).alias("events_per_session"))
    out.append(pl.col("longest").fill_null(zero).cast(pl.Float64).alias("longest_streak_days"))
    for i, w in enumerate(windows_s):
        den = pl.min_horizontal(pl.lit(w), pl.col("age")) * pl.col("ne_n_all")
        trend = pl.col(f"ne_n_w{i}").cast(pl.Float64) * age / pl.when(den != 0).then(den)
        out.append(trend.alias(f"trend:{i}"))
    gap_mean = pl.col("gap_sum") / pl.when(pl.col("gap_n") != 0).then(pl.col("gap_n")) / 3600.0
    out.append(gap_mean.alias("gap_mean_hours"))
    out.append((pl.col("gap_max") / 3600.0).alias("gap_max_hours"))
    for i in range(len(vocab)):
        out.append((pl.col(f"first{i}") / 3600.0).alias(f"hours_to_first:{i}"))
    for j in range(len(transitions)):
        out.append(pl.col(f"tr{j}").fill_null(zero).cast(pl.Float64).alias(f"transition:{j}"))
    out.append(pl.col("distinct").fill_null(zero).cast(pl.Float64).alias("distinct_events"))
    entropy = (n_all.log() - pl.col("nlogn") / float(SCALE) / n_all).clip(lower_bound=0.0)
    out.append(pl.when(n_all > 0).then(entropy).otherwise(0.0).alias("event_entropy"))
    return out
