"""Where runs go: resolve the tracking URI, prove the store answers, pick the experiment.

Order of precedence: the ``MLFLOW_TRACKING_URI`` environment variable, then
``mlflow.tracking_uri`` in the config, then a SQLite file ``mlflow.db`` in the project folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from propensity.config import MlflowConfig
from propensity.errors import TrackingError
from propensity.tracking._mlflow import MlflowClient, mlflow, quiet

__all__ = [
    "Store",
    "connect",
    "local_store_uri",
    "probe",
    "redact_uri",
    "resolve_tracking_uri",
]

# A probe must fail fast: mlflow's defaults retry an unreachable server for minutes.
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_FIX = (
    "Start the tracking server or fix MLFLOW_TRACKING_URI / mlflow.tracking_uri in the config "
    "(create the folder of a SQLite store); or set mlflow.on_unreachable: local to log to a local "
    "SQLite store."
)


@dataclass(frozen=True)
class Store:
    """A tracking store that answered: its URI, a client bound to it, and the experiment."""

    uri: str
    client: MlflowClient
    experiment_id: str
    note: str | None = None  # set when we fell back to the local store


def local_store_uri(project_dir: Path | str | None = None) -> str:
    """``sqlite:///<absolute project dir>/mlflow.db`` (the current folder by default)."""
    folder = Path(project_dir) if project_dir is not None else Path.cwd()
    return f"sqlite:///{(folder.resolve() / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(cfg: MlflowConfig, project_dir: Path | str | None = None) -> str:
    """The tracking URI to use: environment, then config, then the local SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri or local_store_uri(project_dir)


def redact_uri(uri: str) -> str:
    """Hide a password in ``scheme://user:password@host`` so it never reaches a message or log."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", uri)


def connect(cfg: MlflowConfig, project_dir: Path | str | None = None) -> Store:
    """Reach the tracking store and get or create the experiment named in the config.

    An unreachable store raises :class:`TrackingError` (exit 5), or with
    ``on_unreachable: local`` falls back to the local SQLite store and says so in ``note``.
    """
    uri = resolve_tracking_uri(cfg, project_dir)
    try:
        client = probe(uri)
        note = None
    except TrackingError as exc:
        local = local_store_uri(project_dir)
        if cfg.on_unreachable != "local" or uri == local:
            raise
        client = probe(local)
        note = f"{exc} Logged to the local store {local} instead (mlflow.on_unreachable: local)."
        uri = local
    # Fluent calls (log_model) go to the global URIs; the pipeline runs one store per process.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return Store(uri=uri, client=client, experiment_id=_experiment(client, uri, cfg), note=note)


def probe(uri: str) -> MlflowClient:
    """A client for ``uri`` after one cheap request proves the store answers."""
    _check_sqlite_folder(uri)
    try:
        with quiet(), _env(_PROBE_ENV):
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
    except Exception as exc:  # mlflow, requests and SQLAlchemy each raise their own kinds
        raise TrackingError(
            f"The MLflow tracking store at {redact_uri(uri)!r} is unreachable "
            f"({redact_uri(_first_line(exc))}). {_FIX}"
        ) from None
    return client


def _check_sqlite_folder(uri: str) -> None:
    # SQLAlchemy's own message for a missing folder is "unable to open database file".
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise TrackingError(
                f"The MLflow tracking store at {uri!r} is unreachable (folder {str(folder)!r} "
                f"does not exist). {_FIX}"
            )


def _experiment(client: MlflowClient, uri: str, cfg: MlflowConfig) -> str:
    with quiet():
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            return client.create_experiment(cfg.experiment, artifact_location=_artifacts(uri))
    if experiment.lifecycle_stage != "active":
        raise TrackingError(
            f"MLflow experiment {cfg.experiment!r} at {redact_uri(uri)!r} is deleted. Restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or set "
            f"mlflow.experiment to another name."
        )
    return experiment.experiment_id


def _artifacts(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside the database, not in the current folder."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
    return None  # a server decides where its artifacts go


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
