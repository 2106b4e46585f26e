"""A run context for the pipeline: params, metrics, tags, artifacts and data fingerprints.

Every run is named ``<project>-<task>-<UTC date and time>`` (``demo-train-20250630-140512``) so
runs tell themselves apart in the MLflow UI, and carries the resolved config it ran with
(:data:`CONFIG_ARTIFACT`), which ``propensity report --run-id`` reads back.

>>> with start_run(cfg, "train") as run:  # doctest: +SKIP
...     run.log_params(cfg)
...     run.log_metrics({"test.average_precision": 0.41})
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel

from propensity import __version__
from propensity.config import Config
from propensity.errors import TrackingError
from propensity.model.bundle import PQLModel
from propensity.tracking._mlflow import mlflow, quiet
from propensity.tracking.fingerprint import data_fingerprint, git_commit
from propensity.tracking.pyfunc import LoggedModel, log_pql_model
from propensity.tracking.registry import (
    LoadedModel,
    PromotionDecision,
    champion,
    register_model,
    set_champion,
)
from propensity.tracking.store import Store, connect, redact_uri

__all__ = [
    "CONFIG_ARTIFACT",
    "TrackedRun",
    "config_yaml",
    "flatten_params",
    "redact",
    "run_name_for",
    "start_run",
]

CONFIG_ARTIFACT = "config/config.yaml"  # the resolved config every run carries

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_MAX_PARAM = 6000  # mlflow's limit on a param value
# Config values that hold identifiers of people: logged as a count, never as values.
_ID_LISTS = {"data.exclude.user_ids"}


def redact(text: str) -> str:
    """Replace anything shaped like an email address with ``<redacted>``."""
    return _EMAIL.sub("<redacted>", text)


def flatten_params(params: Mapping[str, Any] | BaseModel, prefix: str = "") -> dict[str, str]:
    """Nested mappings and configs as ``{"a.b.c": "value"}`` strings fit for mlflow params.

    Durations are written like the config (``7d``, ``36h``); lists of plain values as JSON;
    lists of sections by index; email-shaped text is redacted and id lists become a count.

    >>> flatten_params({"label": {"horizon": timedelta(days=30)}, "seed": 42})
    {'label.horizon': '30d', 'seed': '42'}
    """
    raw = params.model_dump() if isinstance(params, BaseModel) else params
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if name in _ID_LISTS:
            out[name] = f"<{len(value)} ids>"
        elif isinstance(value, BaseModel | Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple) and any(_is_section(v) for v in value):
            for i, item in enumerate(value):
                out.update(flatten_params(item, prefix=f"{name}.{i}."))
        else:
            out[name] = redact(_format(value))[:_MAX_PARAM]
    return out


def _is_section(value: Any) -> bool:
    return isinstance(value, BaseModel | Mapping)


class TrackedRun:
    """One MLflow run; use it as a context manager so it always ends (FAILED on an error)."""

    def __init__(self, store: Store, run_id: str, cfg: Config) -> None:
        self.store = store
        self.run_id = run_id
        self.cfg = cfg

    @property
    def client(self) -> Any:
        return self.store.client

    @property
    def note(self) -> str | None:
        """Why the run went to the local store instead of the configured one, if it did."""
        return self.store.note

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.end("FAILED" if kind is not None else "FINISHED")

    def end(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED)."""
        with self._write("end the run"):
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run(status=status)
            else:
                self.client.set_terminated(self.run_id, status=status)

    # -- params, metrics, tags -----------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any] | BaseModel) -> dict[str, str]:
        """Log a config or nested mapping as flat params; returns what was logged."""
        flat = flatten_params(params)
        with self._write("log params"):
            self.client.log_batch(
                self.run_id, params=[mlflow.entities.Param(k, v) for k, v in flat.items()]
            )
        return flat

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics (NaN is kept: an undefined metric is a fact worth recording)."""
        stamp = _now_ms()
        items = [mlflow.entities.Metric(k, float(v), stamp, step or 0) for k, v in metrics.items()]
        with self._write("log metrics"):
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags; values are stringified and email-shaped text is redacted."""
        items = [mlflow.entities.RunTag(k, redact(_format(v))[:8000]) for k, v in tags.items()]
        with self._write("set tags"):
            self.client.log_batch(self.run_id, tags=items)

    # -- artifacts -----------------------------------------------------------------------------

    def log_text(self, text: str, path: str) -> None:
        """Write ``text`` as the artifact ``path`` (e.g. ``reports/summary.md``)."""
        with self._write(f"log artifact {path!r}"):
            self.client.log_text(self.run_id, redact(text), path)

    def log_dict(self, data: Mapping[str, Any], path: str) -> None:
        """Write a JSON-able mapping as a JSON artifact."""
        text = json.dumps(data, indent=2, sort_keys=True, default=_format)
        self.log_text(text, path)

    def log_figure(self, fig: Any, path: str) -> None:
        """Save a matplotlib figure as the artifact ``path`` (``.png`` or ``.svg``)."""
        with self._write(f"log figure {path!r}"):
            self.client.log_figure(self.run_id, fig, path)

    def log_table(self, df: pd.DataFrame, path: str) -> None:
        """Write a table as ``.parquet``, ``.csv`` or ``.json``; PII columns are dropped first."""
        suffix = Path(path).suffix
        if suffix not in (".parquet", ".csv", ".json"):
            raise ValueError(
                f"The 'path' parameter of log_table must end in .parquet, .csv or .json. "
                f"Got {path!r} instead."
            )
        table = _without_pii(df, self.cfg.data.pii_columns)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            if suffix == ".parquet":
                table.to_parquet(local, index=False)
            elif suffix == ".csv":
                table.to_csv(local, index=False)
            else:
                table.to_json(local, orient="records", date_format="iso", indent=1)
            self.log_file(local, _folder(path))

    def log_file(self, local_path: Path | str, artifact_dir: str | None = None) -> None:
        """Copy a local file into the run's artifacts (under ``artifact_dir`` if given)."""
        with self._write(f"log file {str(local_path)!r}"):
            self.client.log_artifact(self.run_id, str(local_path), artifact_dir)

    # -- the model ------------------------------------------------------------------------------

    def log_model(self, model: PQLModel) -> LoggedModel:
        """Log ``model`` as the run's pyfunc (artifact: the PQLModel folder)."""
        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise TrackingError(
                f"Run {self.run_id} is not the active MLflow run, so the model cannot be logged "
                f"to it. Log the model inside its `with start_run(...)` block."
            )
        with self._write("log the model"):
            logged = log_pql_model(model)
        self.set_tags({"model.uri": logged.model_uri})
        return logged

    def register_model(self, logged: LoggedModel) -> str:
        """Register a logged model under ``mlflow.registered_model``; returns the version."""
        model = self.cfg.mlflow.registered_model
        tags = {"run_id": self.run_id, "git_commit": self._tag("git_commit")}
        version = register_model(self.client, logged, model, tags=tags)
        self.set_tags({"model.registered": f"{model}/{version}"})
        return version

    def champion(self) -> LoadedModel | None:
        """The registered model's current champion, loaded to score (None: no champion)."""
        with self._write("read the champion"):
            return champion(self.client, self.cfg.mlflow.registered_model)

    def publish(self, model: PQLModel) -> str:
        """Log ``model`` to the run and register it; returns the new version."""
        return self.register_model(self.log_model(model))

    def record_promotion(self, decision: PromotionDecision) -> None:
        """Point ``@champion`` at the version if the pipeline promoted it; log the decision."""
        name = self.cfg.mlflow.registered_model
        metric, version = decision.metric, decision.version
        with self._write("promote the model"):
            if decision.promoted:
                set_champion(self.client, name, version)
            self.client.set_model_version_tag(
                name, version, "promotion", "champion" if decision.promoted else "not promoted"
            )
        metrics = {f"promotion.new_{metric}": decision.new_value}
        if decision.champion_value is not None:
            metrics[f"promotion.champion_{metric}"] = decision.champion_value
        self.log_metrics(metrics)
        self.set_tags(
            {
                "promotion.decision": "promoted" if decision.promoted else "kept_champion",
                "promotion.reason": decision.reason,
                "promotion.weakness": decision.weakness or "none",
                "promotion.champion_version": decision.champion_version or "none",
                "promotion.version": version,
            }
        )

    # -- provenance ----------------------------------------------------------------------------

    def log_data_fingerprint(
        self,
        name: str,
        paths: Iterable[str | Path],
        *,
        rows: int | None = None,
        time_range: tuple[Any, Any] | None = None,
        max_hash_bytes: int = 256 << 20,
    ) -> dict[str, Any]:
        """Record what input ``name`` was: file count, bytes, sha256, rows and time range.

        Numbers become params ``data.<name>.*``; the hash is also a tag for searching runs.
        """
        fingerprint = data_fingerprint(paths, max_hash_bytes=max_hash_bytes)
        if rows is not None:
            fingerprint["rows"] = int(rows)
        if time_range is not None:
            fingerprint["min_time"], fingerprint["max_time"] = (str(t) for t in time_range)
        self.log_params({f"data.{name}": fingerprint})
        self.set_tags({f"data.{name}.sha256": fingerprint["sha256"]})
        return fingerprint

    def _tag(self, key: str) -> str:
        with self._write("read the run"):
            return self.client.get_run(self.run_id).data.tags.get(key, "unknown")

    @contextmanager
    def _write(self, what: str) -> Iterator[None]:
        try:
            with quiet():
                yield
        except Exception as exc:  # mlflow, requests and SQLAlchemy each raise their own kinds
            if isinstance(exc, TrackingError):
                raise
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise TrackingError(
                f"The MLflow tracking store at {redact_uri(self.store.uri)!r} refused to {what} "
                f"for run {self.run_id} ({type(exc).__name__}: {redact(first)}). Check that the "
                f"store is up and writable; params cannot be re-logged with a new value."
            ) from None


def start_run(
    cfg: Config,
    run_name: str,
    *,
    project_dir: Path | str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> TrackedRun:
    """Connect to the store, start a run in the configured experiment and tag the code version.

    Tags ``git_commit`` (``git rev-parse HEAD`` of ``project_dir``, else ``"unknown"``) and
    ``propensity.version``. When the store is unreachable and ``on_unreachable: local`` the run
    goes to the local store and :attr:`TrackedRun.note` says so.
    """
    store = connect(cfg.mlflow, project_dir)
    with quiet():
        if mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")  # a run left open by a crashed step must not nest
        run = mlflow.start_run(
            experiment_id=store.experiment_id, run_name=run_name_for(cfg.project, run_name)
        )
    tracked = TrackedRun(store, run.info.run_id, cfg)
    tracked.set_tags(
        {
            "git_commit": git_commit(project_dir),
            "propensity.version": __version__,
            "project": cfg.project,
            "task": run_name,
            **(tags or {}),
        }
    )
    if store.note:
        tracked.set_tags({"tracking.fallback": store.note})
    tracked.log_text(config_yaml(cfg), CONFIG_ARTIFACT)
    return tracked


def run_name_for(project: str, task: str, when: datetime | None = None) -> str:
    """``<project>-<task>-<YYYYmmdd-HHMMSS>`` in UTC: runs that tell themselves apart.

    >>> run_name_for("demo", "train", datetime(2025, 6, 30, 14, 5, 12))
    'demo-train-20250630-140512'
    """
    when = when or datetime.now(UTC)
    return f"{project}-{task}-{when:%Y%m%d-%H%M%S}"


def config_yaml(cfg: Config) -> str:
    """The resolved config as YAML that reads back into the same :class:`Config`.

    Every key is written, defaults included. Ids of people (``data.exclude.user_ids``) are
    left out (the params hold their count) and a tracking URI loses any password.
    """
    raw = _plain(cfg.model_dump())
    raw["data"]["exclude"]["user_ids"] = []
    if raw["mlflow"].get("tracking_uri"):
        raw["mlflow"]["tracking_uri"] = redact_uri(raw["mlflow"]["tracking_uri"])
    header = (
        f"# The resolved config of a propensity {__version__} run (every key, defaults "
        f"included).\n# data.exclude.user_ids is not logged; the run's params hold its count.\n"
    )
    return header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    """Config values as YAML scalars the loader reads back (durations as ``7d``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _format(value: Any) -> str:
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, list | tuple):
        return json.dumps([_format(v) if isinstance(v, timedelta) else v for v in value])
    return str(value)


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _without_pii(df: pd.DataFrame, pii_columns: Iterable[str]) -> pd.DataFrame:
    """Drop the configured PII columns and redact email-shaped text in the others."""
    pii = {c.lower() for c in pii_columns}
    table = df.drop(columns=[c for c in df.columns if str(c).lower() in pii])
    for col in table.columns:
        if table[col].dtype == object or isinstance(table[col].dtype, pd.StringDtype):
            values = table[col]
            table[col] = values.where(values.isna(), values.astype(str).map(redact))
    return table


def _folder(path: str) -> str | None:
    parent = Path(path).parent.as_posix()
    return None if parent in ("", ".") else parent


def _now_ms() -> int:
    return int(time.time() * 1000)
