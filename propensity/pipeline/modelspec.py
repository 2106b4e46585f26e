"""The feature spec a model was trained with, checked against what this code computes."""

from __future__ import annotations

import json

from propensity.errors import ModelError
from propensity.features import FeatureSpec
from propensity.model.bundle import PQLModel

__all__ = ["model_spec"]


def model_spec(model: PQLModel) -> FeatureSpec:
    """Rebuild the model's FeatureSpec; exit 3 when its hash differs from the recorded one.

    A different hash means this version of the code would compute other features than the model
    was trained on (or the bundle was edited): scoring would be silently wrong, so refuse.
    """
    try:
        spec = FeatureSpec.from_json(json.dumps(model.feature_spec))
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(
            f"The model's feature spec cannot be read by this version of propensity ({exc}). "
            f"Retrain the model, or score with the propensity version that trained it."
        ) from None
    if spec.hash != model.feature_spec_hash:
        raise ModelError(
            f"The model's recorded feature-spec hash {model.feature_spec_hash} does not match the "
            f"spec this code computes ({spec.hash}). Retrain the model, or score with the "
            f"propensity version that trained it."
        )
    if list(spec.columns) != list(model.feature_columns):
        raise ModelError(
            "The model's feature columns differ from its feature spec's columns. The bundle was "
            "edited or is corrupt; retrain the model."
        )
    return spec
