"""The trained model bundle: booster, calibrator, threshold and the feature spec they expect.

A bundle is saved as a folder of plain files, never pickle:

- ``booster.txt``: LightGBM's own text model (only the kept trees);
- ``calibrator.json``: :meth:`Calibrator.to_dict`;
- ``bundle.json``: threshold, feature columns, categorical levels, the feature spec and its hash,
  JSON-able metadata, and the SHA-256 of the other two files.

The checksums are checked before LightGBM parses the booster: its parser aborts the whole
process on some damaged model texts (a file cut short), so a damaged file must never reach it.

The folder is written next to its destination and renamed into place, so a reader never sees a
half-written model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from propensity.contract import FEATURES
from propensity.errors import ModelError
from propensity.features import FeatureSpec
from propensity.model.calibrate import Calibrator

__all__ = ["FORMAT_VERSION", "PQLModel", "align_features", "feature_matrix"]

FORMAT_VERSION = 1
_FILES = ("booster.txt", "calibrator.json", "bundle.json")
_CHECKED = ("booster.txt", "calibrator.json")  # their SHA-256 is recorded in bundle.json


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

    @cached_property
    def spec(self) -> FeatureSpec:
        """The :class:`FeatureSpec` the model was trained with, checked against this code.

        A ModelError (exit 3) when it cannot be read, when its hash differs from the recorded one
        (this code would compute other features than the model was trained on, or the bundle was
        edited: scoring would be silently wrong), or when its columns are not the model's.
        :meth:`load` checks it before handing the model out.
        """
        return _read_spec(self.feature_spec, self.feature_spec_hash, self.feature_columns)

    # -- input checks ------------------------------------------------------------------------

    def check_columns(self, X: pd.DataFrame) -> None:
        """Raise :class:`ModelError` naming every missing or unexpected feature column."""
        # the feature table's keys and carried columns are not features: ignored when scoring
        present = [c for c in X.columns if c not in FEATURES.non_features]
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

    def predict_matrix(self, matrix: np.ndarray, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw and calibrated P(y=1) of rows already prepared as one float matrix.

        The score job builds the matrix once (``explain.to_matrix(model.prepare(X))``) for both
        the scores and their SHAP values; ``n_threads`` bounds LightGBM's threads.
        """
        raw = np.asarray(self.booster.predict(matrix, num_threads=n_threads), dtype=np.float64)
        return raw, np.asarray(self.calibrator.predict(raw), dtype=np.float64)

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
            checksums = {name: _sha256(tmp / name) for name in _CHECKED}
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
                    "checksums": checksums,
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
        """Read a bundle folder written by :meth:`save`.

        Every file is checked before it is trusted: a corrupted or edited bundle (JSON that
        does not parse, a booster LightGBM refuses, a calibrator that is not a probability
        map, a threshold outside [0, 1], columns that do not match) is a :class:`ModelError`
        naming the file, never a traceback or a silently wrong score.
        """
        path = Path(path)
        missing = [name for name in _FILES if not (path / name).is_file()]
        if missing:
            raise ModelError(
                f"No model bundle at {str(path)!r}: expected files {', '.join(_FILES)}, "
                f"missing {', '.join(missing)}. Train a model first or pass the right --model path."
            )
        meta = _read_json(path, "bundle.json")
        if not isinstance(meta, dict):
            raise _corrupt(path, "bundle.json", "does not hold a JSON object")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"Model bundle {str(path)!r} has format version {_short(version)}; this "
                f"propensity reads version {FORMAT_VERSION}. Retrain the model with this version."
            )
        fields = _check_meta(path, meta)
        _check_files(path, meta.get("checksums"))
        try:
            text = (path / "booster.txt").read_text(encoding="utf-8")
            booster = lgb.Booster(model_str=text)
        except (lgb.basic.LightGBMError, ValueError, UnicodeDecodeError, OSError) as exc:
            what = f"is not a LightGBM model ({_short(exc)})"
            raise _corrupt(path, "booster.txt", what) from None
        if booster.num_feature() != len(fields["feature_columns"]):
            raise _corrupt(
                path,
                "booster.txt",
                f"expects {booster.num_feature()} features where bundle.json lists "
                f"{len(fields['feature_columns'])}",
            )
        calibrator = _load_calibrator(path)
        model = cls(booster=booster, calibrator=calibrator, **fields)
        # the spec is checked here, once: a model whose spec does not match never scores
        where = repr(str(path / "bundle.json"))
        model.__dict__["spec"] = _read_spec(
            fields["feature_spec"], fields["feature_spec_hash"], fields["feature_columns"], where
        )
        return model


def _read_spec(
    feature_spec: dict[str, Any],
    recorded_hash: str,
    feature_columns: list[str],
    where: str = "the model",
) -> FeatureSpec:
    """The spec a bundle records, read by this code and checked against its recorded hash and
    the model's columns; ``where`` names the file in every message."""
    try:
        spec = FeatureSpec.from_json(json.dumps(feature_spec), source=where)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(
            f"The model's feature spec in {where} cannot be read by this version of propensity "
            f"({_short(exc)}). Retrain the model, or score with the propensity version that "
            f"trained it."
        ) from None
    if spec.hash != recorded_hash:
        raise ModelError(
            f"The model's recorded feature-spec hash {recorded_hash[:40]} does not match "
            f"the spec this code computes ({spec.hash}) from {where}. Retrain the model, or "
            f"score with the propensity version that trained it."
        )
    if list(spec.columns) != list(feature_columns):
        raise ModelError(
            f"The model's feature columns differ from its feature spec's columns in {where}. The "
            f"bundle was edited or is corrupt; retrain the model."
        )
    return spec


def _short(value: Any, limit: int = 120) -> str:
    text = str(value) if isinstance(value, BaseException) else repr(value)
    text = text.strip().splitlines()[0] if text.strip() else type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _corrupt(path: Path, name: str, what: str) -> ModelError:
    return ModelError(
        f"Model bundle {str(path)!r} is corrupt: {name} {what}. Retrain the model, or restore "
        f"the folder from the registry (e.g. score with --model models:/<name>@champion)."
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_files(path: Path, checksums: Any) -> None:
    """The booster and calibrator are the files save() wrote, byte for byte.

    Bundles from before checksums were recorded get their booster parsed once in a child
    process first: if LightGBM's parser aborts there, this process lives to say so.
    """
    if checksums is None:
        _probe_booster(path)
        return
    if not isinstance(checksums, dict):
        raise _corrupt(path, "bundle.json", "has 'checksums' that is not a map of file to hash")
    for name in _CHECKED:
        try:
            same = checksums.get(name) == _sha256(path / name)
        except OSError as exc:
            raise _corrupt(path, name, f"cannot be read ({_short(exc)})") from None
        if not same:
            raise _corrupt(
                path,
                name,
                "does not match the checksum recorded in bundle.json (the file was changed or "
                "cut short)",
            )


_PROBE = "import sys, lightgbm; lightgbm.Booster(model_str=sys.stdin.read())"


def _probe_booster(path: Path) -> None:
    try:
        text = (path / "booster.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _corrupt(path, "booster.txt", f"cannot be read ({_short(exc)})") from None
    # errors="replace": LightGBM's fatal messages may echo bytes read past a cut text
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=text,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        raise _corrupt(
            path, "booster.txt", f"is not a LightGBM model ({_short(lines[-1] if lines else '')})"
        )


def _read_json(path: Path, name: str) -> Any:
    try:
        return json.loads((path / name).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise _corrupt(path, name, f"is not valid JSON ({_short(exc)})") from None


def _check_meta(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The bundle's fields, each checked for its type and range."""

    def bad(key: str, what: str) -> ModelError:
        return _corrupt(path, "bundle.json", f"has {key!r} {what}")

    threshold = meta.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0.0 <= float(threshold) <= 1.0
    ):
        raise bad("threshold", f"{_short(threshold)}, not a probability in [0, 1]")
    columns = meta.get("feature_columns")
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise bad("feature_columns", "that is not a list of distinct column names")
    categorical = meta.get("categorical")
    if not isinstance(categorical, dict) or not all(
        k in columns and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for k, v in categorical.items()
    ):
        raise bad("categorical", "that is not a map of feature column to its text levels")
    spec, spec_hash = meta.get("feature_spec"), meta.get("feature_spec_hash")
    if not isinstance(spec, dict) or not isinstance(spec_hash, str):
        raise bad("feature_spec", "or 'feature_spec_hash' missing or of the wrong type")
    metadata = meta.get("metadata", {})
    if not isinstance(metadata, dict):
        raise bad("metadata", "that is not a JSON object")
    return {
        "threshold": float(threshold),
        "feature_columns": list(columns),
        "categorical": {k: list(v) for k, v in categorical.items()},
        "feature_spec": spec,
        "feature_spec_hash": spec_hash,
        "metadata": metadata,
    }


def _load_calibrator(path: Path) -> Calibrator:
    """The calibrator, checked to map probabilities to probabilities, in order."""
    raw = _read_json(path, "calibrator.json")
    if not isinstance(raw, dict):
        raise _corrupt(path, "calibrator.json", "does not hold a JSON object")
    try:
        calibrator = Calibrator.from_dict(raw)
        probe = np.linspace(0.0, 1.0, 11)
        with np.errstate(all="ignore"):
            mapped = np.asarray(calibrator.predict(probe), dtype=float)
    except ModelError as exc:
        raise _corrupt(path, "calibrator.json", f"is not usable ({_short(exc)})") from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _corrupt(path, "calibrator.json", f"is not usable ({_short(exc)})") from None
    if (
        mapped.shape != probe.shape
        or not np.all(np.isfinite(mapped))
        or np.any((mapped < 0) | (mapped > 1))
        or np.any(np.diff(mapped) < -1e-12)
    ):
        raise _corrupt(
            path, "calibrator.json", "does not map scores to probabilities in increasing order"
        )
    return calibrator


def align_features(
    X: pd.DataFrame,
    feature_columns: list[str],
    categorical: dict[str, list[str]],
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Select ``feature_columns`` in order; categoricals on the given levels, the rest float64.

    Training and scoring both go through here, so the booster always sees the same encoding.
    ``rows`` (positions) keeps only those rows, taken column by column: one copy of the
    features, instead of a copy of every column of ``X`` (keys included) and then another.
    """
    numeric = [col for col in feature_columns if col not in categorical]
    # The numbers are written straight into one float block (a row of it per column), which
    # the frame then wraps without a copy: building the frame from a dict of columns would
    # copy every number a second time to consolidate them.
    block = np.empty((len(numeric), len(X) if rows is None else rows.size))
    _write_numbers(block, X, list(enumerate(numeric)), rows)
    index = X.index if rows is None else X.index[rows]
    out = pd.DataFrame(block.T, index=index, columns=pd.Index(numeric, dtype=object), copy=False)
    for position, col in enumerate(feature_columns):  # in order: each lands at its position
        if col in categorical:
            out.insert(position, col, _categories(X, col, categorical[col], rows))
    return out


def feature_matrix(
    X: pd.DataFrame,
    feature_columns: list[str],
    categorical: dict[str, list[str]],
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`align_features` as the float64 matrix LightGBM makes of its frame: the same
    numbers, categoricals as their codes on the given levels (missing or unseen: NaN), laid
    out column by column as LightGBM's own conversion lays them.

    Training feeds LightGBM this matrix: handed the frame, LightGBM would copy every number
    once more to convert it, for every slice, and the validation slice twice.
    """
    block = np.empty((len(feature_columns), len(X) if rows is None else rows.size))
    numeric = [(j, col) for j, col in enumerate(feature_columns) if col not in categorical]
    _write_numbers(block, X, numeric, rows)
    for j, col in enumerate(feature_columns):
        if col in categorical:
            codes = _category_codes(X, col, categorical[col], rows)
            block[j] = np.where(codes < 0, np.nan, codes)
    return block.T


def _write_numbers(
    block: np.ndarray, X: pd.DataFrame, columns: list[tuple[int, str]], rows: np.ndarray | None
) -> None:
    """Write each numeric column ``col`` of ``X`` (its ``rows``) as float64 into ``block[j]``."""
    views: list[tuple[int, np.ndarray]] = []  # float64 columns, taken below chunk by chunk
    for j, col in columns:
        values = X[col]
        array = _as_float(values, col)
        if rows is None:
            block[j] = array
        elif values.dtype == np.float64:  # a view of the frame's own numbers
            views.append((j, array))
        else:  # a converted copy: taken now and let go, so one copy is held at a time
            block[j] = array[rows]
    # Rows are taken a chunk at a time across every column: a frame wrapping a row-major
    # matrix holds each column at a stride, and a chunk's cache lines then serve all its
    # columns (600k of 1M rows x 148 strided columns: 1.5 s -> 0.5 s CPU; contiguous columns
    # unchanged). Fancy indexing, not np.take, which first copies a strided column whole.
    if rows is None or not views:
        return
    # A run of consecutive rows (an out-of-time slice of a frame in time order) is copied by
    # slicing, without reading an index or filling a temporary per column.
    first = int(rows[0]) if rows.size else 0
    consecutive = rows.size > 0 and bool(np.all(np.diff(rows) == 1))
    for start in range(0, rows.size, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, rows.size)
        if consecutive:
            for j, array in views:
                block[j, start:stop] = array[first + start : first + stop]
        else:
            chunk = rows[start:stop]
            for j, array in views:
                block[j, start:stop] = array[chunk]


def _categories(
    X: pd.DataFrame, col: str, levels: list[str], rows: np.ndarray | None
) -> pd.Categorical:
    """A categorical column on ``levels`` (as strings); missing and unseen values missing."""
    values = X[col] if rows is None else X[col].iloc[rows]
    values = values.astype(object).where(values.notna(), None)
    return pd.Categorical(values, categories=levels)


def _category_codes(
    X: pd.DataFrame, col: str, levels: list[str], rows: np.ndarray | None
) -> np.ndarray:
    """The codes of :func:`_categories` (-1: missing or unseen).

    A pandas categorical column is mapped once per category, by :func:`_categories` itself on
    a column holding each category once, and then per row by its code: the same codes, since
    each row's code depends on its value alone, without turning every row into an object.
    """
    values = X[col]
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return _categories(X, col, levels, rows).codes
    each = pd.DataFrame(
        {col: pd.Categorical.from_codes(range(len(values.cat.categories)), dtype=values.dtype)}
    )
    mapping = np.r_[_categories(each, col, levels, None).codes, -1]  # code -1 stays -1
    row_codes = values.cat.codes.to_numpy()
    return mapping[row_codes if rows is None else row_codes[rows]]


_ROW_CHUNK = 8192


def _as_float(values: pd.Series, col: str) -> np.ndarray:
    """A numeric column as float64 numbers (a view when it already is float64)."""
    try:
        numbers = pd.to_numeric(values, errors="raise")
    except (ValueError, TypeError):
        raise ModelError(
            f"Feature column {col!r} must be numeric for this model. Got dtype "
            f"{values.dtype} instead; recompute features with the model's spec."
        ) from None
    if isinstance(numbers.dtype, np.dtype):  # a view when already float64
        return numbers.to_numpy(dtype="float64")
    return numbers.astype("float64").to_numpy()  # nullable dtypes: astype turns NA into NaN


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
