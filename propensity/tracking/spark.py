"""The registered pyfunc as a Spark UDF (``mlflow.pyfunc.spark_udf``), bound by column name.

``spark_udf`` returns a UDF whose positional arguments are matched to the model's inputs by
position: a wrong column order scores silently wrong. So the Spark scorer always passes one
struct whose field names are the signature's input names, and mlflow matches them by name.
``env_manager="local"`` runs the model with the workers' installed packages (propensity,
lightgbm, mlflow); ``virtualenv``/``conda`` would rebuild an environment from the internet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from propensity.config import MlflowConfig
from propensity.errors import ModelError
from propensity.tracking._mlflow import MlflowException, mlflow, quiet
from propensity.tracking.store import resolve_tracking_uri

__all__ = ["RESULT_TYPE", "PyfuncUdf", "pyfunc_udf"]

RESULT_TYPE = "probability double, is_pql boolean"


class PyfuncUdf:
    """A loaded ``spark_udf`` and the input columns of the model's signature, in order.

    Apply ``udf`` to one struct of the ``inputs`` columns (named, so mlflow matches by name);
    :mod:`propensity.engines._spark.scoring` does, so pyspark stays out of tracking.
    """

    def __init__(self, udf: Any, inputs: list[str], model_uri: str) -> None:
        self.udf, self.inputs, self.model_uri = udf, inputs, model_uri


def pyfunc_udf(
    spark: Any,
    model_uri: str,
    cfg: MlflowConfig | None = None,
    project_dir: Path | str | None = None,
) -> PyfuncUdf:
    """Wrap the pyfunc at ``model_uri`` (``models:/<name>@champion``, ``runs:/...``, a folder).

    The tracking store is resolved like :func:`propensity.tracking.load_model`.

    >>> scorer = pyfunc_udf(spark, "models:/propensity-pql@champion")  # doctest: +SKIP
    >>> df.select("user_id", scorer.udf(F.struct(*scorer.inputs)).alias("s"))  # doctest: +SKIP
    """
    if model_uri.startswith(("models:/", "runs:/")):
        uri = resolve_tracking_uri(cfg or MlflowConfig(), project_dir)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    # env_manager="local" is the deliberate choice (see the module docstring); mlflow warns
    # about it on every call, so its logger is held at ERROR around the call.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        with quiet():
            info = mlflow.models.get_model_info(model_uri)
            udf = mlflow.pyfunc.spark_udf(
                spark, model_uri, result_type=RESULT_TYPE, env_manager="local"
            )
    except (MlflowException, OSError) as exc:
        raise ModelError(
            f"Cannot load {model_uri!r} as a Spark UDF: {str(exc).splitlines()[0]}. Check the "
            f"model URI and the tracking store (MLFLOW_TRACKING_URI)."
        ) from None
    finally:
        pyfunc_log.setLevel(level)
    if info.signature is None or info.signature.inputs is None:
        raise ModelError(
            f"Model {model_uri!r} must carry an input signature to be scored on Spark. Got none; "
            f"log it with propensity.tracking (TrackedRun.log_model)."
        )
    return PyfuncUdf(udf, list(info.signature.inputs.input_names()), model_uri)
