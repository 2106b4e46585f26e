"""Reading a logged run back: its tags, metrics and params, and its artifact files.

Used to rebuild a run's report after the fact (``propensity report --run-id ID``), possibly on
another machine than the one that trained: everything comes from the tracking store.

>>> info = run_info("0f1e2d...")  # doctest: +SKIP
>>> info.tags["promotion.decision"]  # doctest: +SKIP
'promoted'
>>> download_artifacts(info.run_id, Path("/tmp/run"))  # doctest: +SKIP
PosixPath('/tmp/run')
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from propensity.config import Config, MlflowConfig, load_config
from propensity.errors import ModelError, TrackingError
from propensity.tracking._mlflow import MlflowClient, MlflowException, quiet
from propensity.tracking.run import CONFIG_ARTIFACT, redact
from propensity.tracking.store import probe, redact_uri, resolve_tracking_uri

__all__ = ["RunInfo", "download_artifacts", "log_artifacts", "run_config", "run_info"]


@dataclass(frozen=True)
class RunInfo:
    """What the store knows about one run (latest value of each metric)."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time_ms: int
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]


def run_info(
    run_id: str, cfg: MlflowConfig | None = None, project_dir: Path | str | None = None
) -> RunInfo:
    """Tags, metrics and params of ``run_id`` in the store ``cfg`` resolves to.

    Raises :class:`ModelError` (exit 3) when the store has no such run.
    """
    client, uri = _client(cfg, project_dir)
    with _reading(run_id, uri):
        run = client.get_run(run_id)
    return RunInfo(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        start_time_ms=int(run.info.start_time or 0),
        tags=dict(run.data.tags),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        params=dict(run.data.params),
    )


def download_artifacts(
    run_id: str,
    dest: Path | str,
    cfg: MlflowConfig | None = None,
    project_dir: Path | str | None = None,
    path: str = "",
) -> Path:
    """Copy the run's artifacts (all, or the folder/file ``path``) into ``dest``; returns it."""
    client, uri = _client(cfg, project_dir)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with _reading(run_id, uri):
        client.get_run(run_id)  # a clear "no such run" before any download
        client.download_artifacts(run_id, path, str(dest))
    return dest


def run_config(
    run_id: str, cfg: MlflowConfig | None = None, project_dir: Path | str | None = None
) -> Config:
    """The resolved config a run logged (``config/config.yaml``), read back into a Config.

    Raises :class:`ModelError` when the run has none (it was logged before runs carried their
    config): pass ``--config`` then.
    """
    client, uri = _client(cfg, project_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with _reading(run_id, uri):
            client.get_run(run_id)
            folder = str(Path(CONFIG_ARTIFACT).parent)
            logged = folder in {a.path for a in client.list_artifacts(run_id)} and (
                CONFIG_ARTIFACT in {a.path for a in client.list_artifacts(run_id, folder)}
            )
            if not logged:
                raise ModelError(
                    f"Run {run_id!r} has no logged config ({CONFIG_ARTIFACT}); it was logged by "
                    f"an older propensity. Pass --config with the config it was trained with."
                )
            local = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
        return load_config(local)


def log_artifacts(
    run_id: str,
    files: Mapping[Path | str, str | None],
    cfg: MlflowConfig | None = None,
    project_dir: Path | str | None = None,
) -> None:
    """Upload local files to an existing (even finished) run: ``{local path: artifact dir}``."""
    client, uri = _client(cfg, project_dir)
    with _reading(run_id, uri):
        for local, folder in files.items():
            client.log_artifact(run_id, str(local), folder)


def _client(cfg: MlflowConfig | None, project_dir: Path | str | None) -> tuple[MlflowClient, str]:
    uri = resolve_tracking_uri(cfg or MlflowConfig(), project_dir)
    return probe(uri), uri


@contextmanager
def _reading(run_id: str, uri: str) -> Iterator[None]:
    try:
        with quiet():
            yield
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            raise ModelError(
                f"Run {run_id!r} does not exist in the tracking store {redact_uri(uri)!r}. Pass "
                f"the run id a training run printed, and point MLFLOW_TRACKING_URI (or "
                f"mlflow.tracking_uri) at the store it logged to."
            ) from None
        raise _store_error(run_id, uri, exc) from None
    except OSError as exc:
        raise _store_error(run_id, uri, exc) from None


def _store_error(run_id: str, uri: str, exc: BaseException) -> TrackingError:
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return TrackingError(
        f"The MLflow tracking store at {redact_uri(uri)!r} failed on run {run_id} "
        f"({type(exc).__name__}: {redact(first)}). Check that the store and its artifact "
        f"location are reachable."
    )
