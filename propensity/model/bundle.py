"""The trained model bundle: booster, calibrator, threshold and the feature spec they expect.

A bundle is saved as a folder of plain files, never pickle:

- ``booster.txt``: LightGBM's own text model (only the kept trees);
- ``calibrator.json``: :meth:`Calibrator.to_dict`;
- ``bundle.json``: threshold, feature columns, categorical levels, the feature spec and its hash,
  and JSON-able metadata.

The folder is written next to its destination and renamed into place, so a reader never sees a
half-written model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity.errors import ModelError
from propensity.model.calibrate import Calibrator

__all__ = ["FORMAT_VERSION", "KEY_COLUMNS", "PQLModel", "align_features"]

FORMAT_VERSION = 1
# Columns a feature frame may carry besides features; they are ignored when scoring.
KEY_COLUMNS = ("user_id", "cutoff_at", "label", "account_id", "signup_at")
_FILES = ("booster.txt", "calibrator.json", "bundle.json")


@dataclass(eq=False)
class PQLModel:
    """A trained, calibrated PQL model and everything needed to score with it."""

    booster: lgb.Booster
    calibrator: Calibrator
    threshold: float
    feature_columns: list[str]
    categorical: dict[str, list[str]]
    feature_spec: dict[str, Any]
    feature_spec_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- input checks ------------------------------------------------------------------------

    def check_columns(self, X: pd.DataFrame) -> None:
        """Raise :class:`ModelError` naming every missing or unexpected feature column."""
        present = [c for c in X.columns if c not in KEY_COLUMNS]
        missing = [c for c in self.feature_columns if c not in X.columns]
        expected = set(self.feature_columns)
        extra = [c for c in present if c not in expected]
        if not missing and not extra:
            return
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_preview(missing)}")
        if extra:
            parts.append(f"{len(extra)} unexpected: {_preview(extra)}")
        raise ModelError(
            f"The feature table does not match the model's {len(self.feature_columns)} feature "
            f"columns ({'; '.join(parts)}). Compute features with the model's feature spec "
            f"(hash {self.feature_spec_hash}) or retrain the model."
        )

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """Feature columns in training order, categoricals on the trained levels, numbers as float.

        Categorical levels never seen in training become missing, which LightGBM routes like
        any other missing value.
        """
        self.check_columns(X)
        return align_features(X, self.feature_columns, self.categorical)

    # -- scoring -----------------------------------------------------------------------------

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated P(y=1) straight from the booster."""
        return np.asarray(self.booster.predict(self.prepare(X)), dtype=float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): columns P(y=0), P(y=1)."""
        p = self.calibrator.predict(self.predict_raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Calibrated ``probability`` and ``is_pql`` (probability >= threshold), indexed like X."""
        p = self.predict_proba(X)[:, 1]
        return pd.DataFrame({"probability": p, "is_pql": p >= self.threshold}, index=X.index)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path | str) -> Path:
        """Write the bundle folder atomically (temp folder, then rename) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            (tmp / "booster.txt").write_text(self.booster.model_to_string(), encoding="utf-8")
            _write_json(tmp / "calibrator.json", self.calibrator.to_dict())
            _write_json(
                tmp / "bundle.json",
                {
                    "format_version": FORMAT_VERSION,
                    "threshold": float(self.threshold),
                    "feature_columns": list(self.feature_columns),
                    "categorical": {k: list(v) for k, v in self.categorical.items()},
                    "feature_spec": self.feature_spec,
                    "feature_spec_hash": self.feature_spec_hash,
                    "metadata": self.metadata,
                },
            )
            if path.exists():
                # swap the old folder out first so the destination is never half-written
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path | str) -> PQLModel:
        """Read a bundle folder written by :meth:`save`."""
        path = Path(path)
        missing = [name for name in _FILES if not (path / name).is_file()]
        if missing:
            raise ModelError(
                f"No model bundle at {str(path)!r}: expected files {', '.join(_FILES)}, "
                f"missing {', '.join(missing)}. Train a model first or pass the right --model path."
            )
        meta = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"Model bundle {str(path)!r} has format version {version!r}; this propensity "
                f"reads version {FORMAT_VERSION}. Retrain the model with this version."
            )
        booster = lgb.Booster(model_str=(path / "booster.txt").read_text(encoding="utf-8"))
        calibrator = Calibrator.from_dict(
            json.loads((path / "calibrator.json").read_text(encoding="utf-8"))
        )
        return cls(
            booster=booster,
            calibrator=calibrator,
            threshold=float(meta["threshold"]),
            feature_columns=list(meta["feature_columns"]),
            categorical={k: list(v) for k, v in meta["categorical"].items()},
            feature_spec=meta["feature_spec"],
            feature_spec_hash=meta["feature_spec_hash"],
            metadata=meta.get("metadata", {}),
        )


def align_features(
    X: pd.DataFrame, feature_columns: list[str], categorical: dict[str, list[str]]
) -> pd.DataFrame:
    """Select ``feature_columns`` in order; categoricals on the given levels, the rest float64.

    Training and scoring both go through here, so the booster always sees the same encoding.
    """
    out = {}
    for col in feature_columns:
        values = X[col]
        if col in categorical:
            levels = categorical[col]
            values = values.astype(object).where(values.notna(), None)
            out[col] = pd.Categorical(values, categories=levels)
        else:
            try:
                out[col] = pd.to_numeric(values, errors="raise").astype("float64").to_numpy()
            except (ValueError, TypeError):
                raise ModelError(
                    f"Feature column {col!r} must be numeric for this model. Got dtype "
                    f"{values.dtype} instead; recompute features with the model's spec."
                ) from None
    return pd.DataFrame(out, index=X.index)


def _preview(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable), encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    """numpy scalars and arrays, timestamps: the usual things metadata picks up on the way."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.Timestamp | np.datetime64):
        return str(pd.Timestamp(obj))
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")
