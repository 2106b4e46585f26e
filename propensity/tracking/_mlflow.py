"""The one import of mlflow, made quiet: no telemetry, no progress bars, no INFO lines.

MLflow reads these settings from the environment when it is imported or when it logs, so the
defaults are set just before the import; a value the user already exported wins. MLflow and the
libraries under it (SQLAlchemy, alembic) also raise deprecation warnings that are theirs to fix,
not our users'; :func:`quiet` silences them around each call into mlflow.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_USER_LEVEL = os.environ.get("MLFLOW_LOGGING_LEVEL")
for _name, _value in (
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
    ("MLFLOW_LOGGING_LEVEL", "WARNING"),
):
    os.environ.setdefault(_name, _value)

# Noise raised by mlflow's own import and calls, each one named.
_NOISE = (
    r".*type hint is inferred as AnyType.*",
    r".*An input example was not provided.*",
    r".*Add type hints to the `predict` method.*",
)

with warnings.catch_warnings():
    for _pattern in _NOISE:
        warnings.filterwarnings("ignore", message=_pattern)
    import mlflow  # noqa: E402
    import mlflow.pyfunc  # noqa: E402
    from mlflow import MlflowClient  # noqa: E402
    from mlflow.exceptions import MlflowException  # noqa: E402

if _USER_LEVEL is None:
    # mlflow may have been imported (and its logger set to INFO) before this module
    logging.getLogger("mlflow").setLevel(logging.WARNING)

__all__ = ["MlflowClient", "MlflowException", "mlflow", "quiet"]


@contextmanager
def quiet() -> Iterator[None]:
    """Silence third-party deprecation noise and mlflow's known hints inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        for pattern in _NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        yield
