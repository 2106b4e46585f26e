"""The trained model as ONE MLflow pyfunc whose artifact is the :class:`PQLModel` folder.

The pyfunc is logged as "models from code": mlflow stores a three-line entry script, not a
pickled object, so loading it runs no pickle. The entry script imports this module, so
``propensity`` must be importable where the model loads (it is installed with the package;
the logged requirements pin the version).

Scoring through pyfunc takes feature columns with numbers as float64 and categoricals as
strings (mlflow's schema check refuses int64 for a double column and the pandas ``category``
dtype for a string column); :func:`pyfunc_input` casts a feature frame that way.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from propensity.model.bundle import PQLModel
from propensity.tracking._mlflow import mlflow, quiet

__all__ = [
    "ARTIFACT_KEY",
    "LoggedModel",
    "PQLPyfunc",
    "log_pql_model",
    "model_signature",
    "pyfunc_input",
]

ARTIFACT_KEY = "pqlmodel"
_ENTRY = '''"""Builds the propensity pyfunc when mlflow loads this model (no pickle)."""
import mlflow.models

from propensity.tracking.pyfunc import PQLPyfunc

mlflow.models.set_model(PQLPyfunc())
'''
_REQUIREMENTS = ("propensity", "mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")


class PQLPyfunc(mlflow.pyfunc.PythonModel):
    """Scores a feature frame: ``probability`` (calibrated) and ``is_pql`` per row."""

    def load_context(self, context: Any) -> None:
        self.model_ = PQLModel.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.model_.predict(model_input)


@dataclass(frozen=True)
class LoggedModel:
    """Where a logged pyfunc lives: ``model_uri`` (``models:/m-...``) and its run."""

    model_uri: str
    model_id: str
    run_id: str


def model_signature(model: PQLModel) -> Any:
    """Input schema from the feature columns (numbers as double, categoricals as string)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [
        ColSpec("string" if col in model.categorical else "double", col)
        for col in model.feature_columns
    ]
    outputs = [ColSpec("double", "probability"), ColSpec("boolean", "is_pql")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def pyfunc_input(X: pd.DataFrame, model: PQLModel) -> pd.DataFrame:
    """The feature columns of ``X`` typed the way the pyfunc signature expects."""
    out = {}
    for col in model.feature_columns:
        values = X[col]
        if col in model.categorical:
            out[col] = values.astype(object).where(values.notna(), None)
        else:
            out[col] = pd.to_numeric(values).astype("float64")
    return pd.DataFrame(out, index=X.index)


def log_pql_model(model: PQLModel, *, name: str = "model") -> LoggedModel:
    """Log ``model`` as a pyfunc in the active run and prove its artifacts are readable."""
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("log_pql_model needs an active run; call it through TrackedRun.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / ARTIFACT_KEY)
        entry = Path(tmp) / "pql_pyfunc.py"
        entry.write_text(_ENTRY, encoding="utf-8")
        with quiet():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(entry),
                artifacts={ARTIFACT_KEY: str(folder)},
                signature=model_signature(model),
                pip_requirements=_requirements(),
                metadata={
                    "feature_spec_hash": model.feature_spec_hash,
                    "threshold": float(model.threshold),
                    "n_features": len(model.feature_columns),
                },
            )
    return LoggedModel(model_uri=info.model_uri, model_id=info.model_id, run_id=active.info.run_id)


def _requirements() -> list[str]:
    pins = []
    for dist in _REQUIREMENTS:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(dist)
    return pins
