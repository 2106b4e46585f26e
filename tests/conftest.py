"""Shared test settings: quiet, offline MLflow and a non-interactive matplotlib backend."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
