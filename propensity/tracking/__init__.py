"""MLflow tracking, the pyfunc model, the registry and champion promotion.

This package is the only place in propensity that imports mlflow. Pipeline use::

    with start_run(cfg, "train") as run:
        run.log_params(cfg)
        run.log_data_fingerprint("events", [cfg.data.events], rows=n, time_range=(lo, hi))
        run.log_metrics({"test.average_precision": ap})
        version = run.publish(model)  # log and register
        run.record_promotion(decision)  # the pipeline decides; this sets the alias

    loaded = load_model("models:/propensity-pql@champion", cfg.mlflow)
"""

from propensity.tracking.artifacts import (
    RunInfo,
    download_artifacts,
    log_artifacts,
    run_config,
    run_info,
)
from propensity.tracking.discovery import log_discovery
from propensity.tracking.fingerprint import data_fingerprint, git_commit
from propensity.tracking.pyfunc import LoggedModel, PQLPyfunc, model_signature, pyfunc_input
from propensity.tracking.registry import (
    CHAMPION,
    LoadedModel,
    PromotionDecision,
    champion,
    load_model,
    register_model,
    set_champion,
)
from propensity.tracking.run import (
    CONFIG_ARTIFACT,
    TrackedRun,
    config_yaml,
    flatten_params,
    redact,
    run_name_for,
    start_run,
)
from propensity.tracking.store import Store, connect, local_store_uri, resolve_tracking_uri

__all__ = [
    "RunInfo",
    "download_artifacts",
    "log_artifacts",
    "run_config",
    "run_info",
    "CHAMPION",
    "CONFIG_ARTIFACT",
    "LoadedModel",
    "LoggedModel",
    "PQLPyfunc",
    "PromotionDecision",
    "champion",
    "Store",
    "TrackedRun",
    "config_yaml",
    "connect",
    "data_fingerprint",
    "log_discovery",
    "flatten_params",
    "git_commit",
    "load_model",
    "local_store_uri",
    "model_signature",
    "pyfunc_input",
    "redact",
    "register_model",
    "resolve_tracking_uri",
    "run_name_for",
    "set_champion",
    "start_run",
]
