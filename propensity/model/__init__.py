"""Training, calibration and the PQL threshold policy.

Import the pieces from their modules; this package keeps its top level light so that loading a
saved model does not pull in the training code.
"""

from propensity.model.bundle import PQLModel
from propensity.model.calibrate import Calibrator

__all__ = ["Calibrator", "PQLModel"]
