"""The model registry: register a logged model, point the champion alias, load a model to score.

Whether a version deserves ``@champion`` is decided in the pipeline
(:mod:`propensity.pipeline.promotion`); this module only reads the current champion and sets the
alias.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from propensity.config import MlflowConfig
from propensity.errors import ModelError, TrackingError
from propensity.model.bundle import PQLModel
from propensity.tracking._mlflow import MlflowClient, MlflowException, mlflow, quiet
from propensity.tracking.pyfunc import ARTIFACT_KEY, LoggedModel
from propensity.tracking.store import probe, redact_uri, resolve_tracking_uri

__all__ = [
    "CHAMPION",
    "LoadedModel",
    "PromotionDecision",
    "champion",
    "load_model",
    "register_model",
    "set_champion",
]

CHAMPION = "champion"
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")
_FORMS = "models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/<path> or a local folder"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether ``version`` became champion, and the numbers that decided it (made by the pipeline).

    ``weakness`` is the one-line reason a model was not good enough to promote at all (its
    interval does not exclude chance, or a rule beats it), empty when it was.
    """

    promoted: bool
    metric: str
    new_value: float
    champion_value: float | None
    champion_version: str | None
    version: str
    reason: str
    weakness: str = ""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score and where it came from (registry fields are None for a folder)."""

    pqlmodel: PQLModel
    name: str | None
    version: str | None
    run_id: str | None


def register_model(
    client: MlflowClient, logged: LoggedModel, name: str, tags: dict[str, str] | None = None
) -> str:
    """Register a logged model under ``name`` and return the new version number.

    The artifacts are checked first, and a failure after the version exists deletes it again
    (and the registered model, if this call created it): no version ever lacks its artifacts.
    """
    _check_artifacts(client, logged)
    created = False
    version = None
    try:
        with quiet():
            if not _exists(lambda: client.get_registered_model(name)):
                created = _create_registered_model(client, name)
            mv = client.create_model_version(
                name,
                source=logged.model_uri,
                run_id=logged.run_id,
                tags=tags,
                model_id=logged.model_id,
            )
            version = mv.version
            status = client.get_model_version(name, version).status
            if status != "READY":
                raise MlflowException(f"model version {version} is {status}, not READY")
            client.set_logged_model_tags(
                logged.model_id,
                {"mlflow.modelVersions": json.dumps([{"name": name, "version": version}])},
            )
    except Exception as exc:  # leave nothing half-registered behind, whatever went wrong
        _undo(client, name, version, created)
        raise TrackingError(
            f"Registering model {logged.model_uri!r} as {name!r} failed "
            f"({type(exc).__name__}: {_first_line(exc)}); nothing was registered. Check that the "
            f"tracking store is up and writable, then train again."
        ) from None
    return str(version)


def champion(client: MlflowClient, name: str) -> LoadedModel | None:
    """The current ``@champion`` of ``name`` loaded to score, or None when there is none."""
    current = _champion_version(client, name)
    return None if current is None else _load_version(client, name, current)


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    """Point the ``champion`` alias of ``name`` at ``version`` (manual promotion too)."""
    with quiet():
        client.set_registered_model_alias(name, CHAMPION, str(version))


def load_model(
    uri_or_path: str | Path,
    cfg: MlflowConfig | None = None,
    project_dir: Path | str | None = None,
) -> LoadedModel:
    """Load a model to score from the registry, a run, or a local folder.

    Accepts ``models:/<name>@champion``, ``models:/<name>/<version>``, ``runs:/<run_id>/<path>``
    or a folder written by ``PQLModel.save`` (or a downloaded pyfunc folder); a folder needs no
    tracking store at all. Anything else raises :class:`ModelError` (exit 3).
    """
    text = str(uri_or_path)
    if not text.startswith(("models:/", "runs:/")):
        return LoadedModel(_load_folder(Path(text), asked=text), None, None, None)
    uri = resolve_tracking_uri(cfg or MlflowConfig(), project_dir)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ModelError(
            f"Cannot load {text!r}: there is no tracking store at {uri!r} yet. Train a model "
            f"first, set MLFLOW_TRACKING_URI, or pass a model folder."
        )
    client = probe(uri)
    # models:/ downloads resolve through mlflow's global registry URI, so point it here too
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if match := _ALIAS_URI.match(text):
        name, alias = match["name"], match["alias"]
        mv = _exists(lambda: client.get_model_version_by_alias(name, alias))
        if mv is None:
            raise ModelError(f"Cannot load {text!r}: {_what_exists(client, name)}")
        return _load_version(client, name, mv.version, asked=text)
    if match := _VERSION_URI.match(text):
        return _load_version(client, match["name"], match["version"], asked=text)
    if match := _RUNS_URI.match(text):
        folder_run = _download(text, client, asked=text, hint="check the run id and model name")
        return LoadedModel(folder_run, None, None, match["run_id"])
    raise ModelError(f"Cannot load {text!r}: expected one of {_FORMS}.")


def _load_version(
    client: MlflowClient, name: str, version: str, asked: str | None = None
) -> LoadedModel:
    asked = asked or f"models:/{name}/{version}"
    mv = _exists(lambda: client.get_model_version(name, str(version)))
    if mv is None:
        raise ModelError(f"Cannot load {asked!r}: {_what_exists(client, name)}")
    model = _download(f"models:/{name}/{mv.version}", client, asked=asked, hint="")
    return LoadedModel(model, name, str(mv.version), mv.run_id)


def _download(uri: str, client: MlflowClient, asked: str, hint: str) -> PQLModel:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with quiet():
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=client.tracking_uri
                )
        except MlflowException as exc:
            raise ModelError(
                f"Cannot load {asked!r}: {_first_line(exc)}. {hint or 'Check the model name.'}"
            ) from None
        return _load_folder(Path(local), asked=asked)


def _load_folder(path: Path, asked: str) -> PQLModel:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", asked):
        raise ModelError(f"Cannot load {asked!r}: only {_FORMS} are accepted.")
    if not path.is_dir():
        raise ModelError(
            f"Cannot load {asked!r}: no such model folder. Pass {_FORMS} (a folder written by "
            f"PQLModel.save)."
        )
    if (path / "MLmodel").is_file() and (path / "artifacts" / ARTIFACT_KEY).is_dir():
        path = path / "artifacts" / ARTIFACT_KEY  # a downloaded pyfunc: its bundle is inside
    return PQLModel.load(path)


def _check_artifacts(client: MlflowClient, logged: LoggedModel) -> None:
    """The logged model's MLmodel and bundle files must be readable before it is registered."""
    with quiet():
        root = client.list_logged_model_artifacts(logged.model_id)
        bundle = client.list_logged_model_artifacts(logged.model_id, f"artifacts/{ARTIFACT_KEY}")
    names = {Path(a.path).name for a in [*root, *bundle]}
    missing = {"MLmodel", "booster.txt", "calibrator.json", "bundle.json"} - names
    if missing:
        raise TrackingError(
            f"Logged model {logged.model_uri!r} lacks {', '.join(sorted(missing))} in its "
            f"artifacts; it was not registered. Check the artifact store and train again."
        )


def _create_registered_model(client: MlflowClient, name: str) -> bool:
    """Create ``name``; False when another process created it first (that is fine too)."""
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
        return False
    return True


def _champion_version(client: MlflowClient, name: str) -> str | None:
    mv = _exists(lambda: client.get_model_version_by_alias(name, CHAMPION))
    return None if mv is None else str(mv.version)


def _exists(call: Any) -> Any:
    """The result of ``call``, or None when mlflow says the thing does not exist."""
    try:
        with quiet():
            return call()
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _what_exists(client: MlflowClient, name: str) -> str:
    """A sentence naming the registered models, or the versions and aliases of ``name``."""
    with quiet():
        model = _exists(lambda: client.get_registered_model(name))
        if model is None:
            names = sorted(m.name for m in client.search_registered_models(max_results=50))
            known = ", ".join(names) if names else "none"
            return f"no registered model {name!r} (registered models: {known})."
        versions = sorted(
            (int(v.version) for v in client.search_model_versions(f"name = '{name}'")),
        )
    aliases = ", ".join(f"@{a}=v{v}" for a, v in sorted(model.aliases.items())) or "none"
    return (
        f"model {name!r} has versions {', '.join(map(str, versions)) or 'none'} and aliases "
        f"{aliases}. Train and promote a model, or ask for an existing version."
    )


def _undo(client: MlflowClient, name: str, version: str | None, created: bool) -> None:
    with quiet():
        if version is not None:
            try:
                client.delete_model_version(name, version)
            except Exception:  # the original error is what the user needs to see
                pass
        if created:
            try:
                client.delete_registered_model(name)
            except Exception:
                pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact_uri(text[0][:300]) if text else ""
