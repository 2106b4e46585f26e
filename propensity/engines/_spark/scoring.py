"""Batch scoring on Spark: the registered pyfunc as a UDF, reason codes per partition, parquet out.

Probabilities come from ``mlflow.pyfunc.spark_udf`` (see :mod:`propensity.tracking.spark`),
so the cluster scores with exactly the model the registry holds. Reason codes and the holdout
reuse :func:`propensity.scoring.score_frame` and :func:`propensity.scoring.holdout_mask` inside
``mapInPandas``, on the rows chosen the same way as on one machine (PQLs plus the top
``explain_top_fraction`` by score, ties by ``user_id``): one definition, run per partition. The
model bundle reaches the workers as a broadcast of its folder's bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from propensity.config import MlflowConfig, ScoringConfig
from propensity.contract import SCORES
from propensity.explain import reason_columns
from propensity.model import PQLModel
from propensity.scoring import holdout_mask, score_frame
from propensity.tracking import LoadedModel, load_model
from propensity.tracking.spark import pyfunc_udf

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["score_spark", "write_scores"]

_KEYS = SCORES.keys[:3]  # user_id, account_id, cutoff_at
_models: dict[str, PQLModel] = {}  # per worker process: one load per model, not per partition


def score_spark(
    spark: SparkSession,
    features: DataFrame,
    model_uri: str,
    cfg: ScoringConfig,
    as_of: datetime,
    *,
    mlflow_cfg: MlflowConfig | None = None,
    project_dir: Path | str | None = None,
    loaded: LoadedModel | None = None,
) -> DataFrame:
    """Score ``features`` (``user_id``, ``account_id``, ``cutoff_at`` + the model's columns).

    Returns one row per user: ``user_id, account_id, cutoff_at, score, percentile, is_pql,
    threshold``, the reason columns, ``holdout, model_name, model_version, run_id, as_of,
    scored_at`` (the single-machine score table without the previous-run comparison).
    The scored features are persisted for the two passes (count, then explain); call
    ``spark.catalog.clearCache()`` after writing when the session lives on.

    >>> scores = score_spark(spark, feats, "models:/propensity-pql@champion", cfg.scoring,
    ...                      as_of)  # doctest: +SKIP
    >>> write_scores(scores, "s3://bucket/pql_scores/")  # doctest: +SKIP
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # the caller's load when given: the driver loads a model once per job
    loaded = loaded or load_model(model_uri, mlflow_cfg, project_dir)
    model = loaded.pqlmodel
    scorer = pyfunc_udf(spark, model_uri, mlflow_cfg, project_dir)
    s = scorer.udf(F.struct(*(F.col(f"`{c}`") for c in scorer.inputs)))
    scored = features.select(
        *_KEYS,
        *(F.col(f"`{c}`") for c in model.feature_columns),
        s["probability"].alias("score"),
        s["is_pql"].alias("is_pql"),
    ).persist()
    n = scored.count()
    # pandas rank(method="max", pct=True): the share of scores <= this one.
    scored = scored.withColumn("percentile", 100.0 * F.cume_dist().over(Window.orderBy("score")))
    top = 0
    if cfg.explain == "all":
        top = n
    elif cfg.explain == "pql_and_top":
        top = math.ceil(cfg.explain_top_fraction * n)
    if cfg.reason_codes == 0 or cfg.explain == "none":
        scored = scored.withColumn("_explain", F.lit(False))
    else:
        ranked = F.row_number().over(Window.orderBy(F.desc("score"), F.asc("user_id")))
        scored = scored.withColumn("_explain", F.col("is_pql") | (ranked <= F.lit(top)))

    info = {"name": loaded.name or "", "version": loaded.version or "", "run_id": loaded.run_id}
    bundle = spark.sparkContext.broadcast(_folder_bytes(model))
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    schema = _schema(cfg.reason_codes)
    features_cols = list(model.feature_columns)
    as_of_ts = pd.Timestamp(as_of)
    if as_of_ts.tz is not None:  # naive UTC, like every timestamp in the tables
        as_of_ts = as_of_ts.tz_convert("UTC").tz_localize(None)

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker_model = _model_from(bundle.value)
        for pdf in batches:
            yield _partition(pdf, worker_model, features_cols, cfg, info, as_of_ts, scored_at)

    out = scored.mapInPandas(explain, schema)
    return out.orderBy(F.desc("score"), F.asc("user_id"))


def write_scores(scores: DataFrame, path: str) -> None:
    """Write the score table as parquet partitioned by ``as_of``, replacing only that as_of."""
    spark = scores.sparkSession
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    scores.write.mode("overwrite").partitionBy("as_of").parquet(path)


# ---- worker side -----------------------------------------------------------------------------
def _partition(
    pdf: pd.DataFrame,
    model: PQLModel,
    feature_cols: list[str],
    cfg: ScoringConfig,
    info: dict,
    as_of: object,
    scored_at: datetime,
) -> pd.DataFrame:
    k = cfg.reason_codes
    out = pdf[[*_KEYS, "score", "percentile", "is_pql"]].reset_index(drop=True)
    out["threshold"] = float(model.threshold)
    reasons = pd.DataFrame(index=out.index, columns=reason_columns(k))
    chosen = pdf["_explain"].to_numpy(dtype=bool)
    if k and chosen.any():
        sub = pdf.loc[chosen, ["user_id", "cutoff_at", *feature_cols]].reset_index(drop=True)
        for col, levels in model.categorical.items():
            sub[col] = pd.Categorical(sub[col], categories=levels)
        every = cfg.model_copy(update={"explain": "all", "holdout_fraction": 0.0})
        found = score_frame(model, sub, None, every, info, as_of, scored_at, n_threads=1).scores
        found = found.set_index("user_id")[reason_columns(k)]
        reasons = found.reindex(out["user_id"].astype(str)).reset_index(drop=True)
    out = pd.concat([out, reasons], axis=1)
    for col in reason_columns(k):
        out[col] = out[col].astype("float64" if col.endswith("_shap") else object)
    user = out["user_id"].astype(str).to_numpy()
    out["holdout"] = holdout_mask(user, cfg.holdout_fraction, cfg.holdout_salt) & out["is_pql"]
    out["model_name"] = info["name"]
    out["model_version"] = info["version"]
    out["run_id"] = info["run_id"] or ""
    out["as_of"] = pd.Timestamp(as_of)
    out["scored_at"] = pd.Timestamp(scored_at)
    return out


def _schema(k: int) -> str:
    reasons = [f"`{c}` {'double' if c.endswith('_shap') else 'string'}" for c in reason_columns(k)]
    head = [
        "user_id string",
        "account_id string",
        "cutoff_at timestamp_ntz",
        "score double",
        "percentile double",
        "is_pql boolean",
        "threshold double",
    ]
    tail = [
        "holdout boolean",
        "model_name string",
        "model_version string",
        "run_id string",
        "as_of timestamp_ntz",
        "scored_at timestamp_ntz",
    ]
    return ", ".join([*head, *reasons, *tail])


def _folder_bytes(model: PQLModel) -> bytes:
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model")
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(folder, arcname="model")
    return buf.getvalue()


def _model_from(blob: bytes) -> PQLModel:
    key = hashlib.sha256(blob).hexdigest()
    if key not in _models:
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            _models[key] = PQLModel.load(Path(tmp) / "model")
    return _models[key]
