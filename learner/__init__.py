"""Heads, cross-validated model selection, metrics, versioned artifacts and atomic deploy.

The learner works on numpy arrays and paths only: it knows nothing about HTTP or the database.
"""

from learner.artifacts import ModelStore, ObjectModelStore
from learner.calibration import TemperatureScaledHead, apply_temperature, fit_temperature
from learner.crossval import UNSCORED_FOLD, assign_folds, cross_validated_predictions
from learner.deploy import Deployed, DeployedHeads, ranked_predictions
from learner.errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    InvalidFunctionId,
    LearnerError,
    NotEnoughData,
)
from learner.heads import (
    HEAD_FAMILIES,
    Candidate,
    Classifier,
    DataShape,
    HeadFamily,
    default_candidates,
    register_head_family,
)
from learner.metrics import (
    classification_metrics,
    confusion_matrix_png,
    expected_calibration_error,
)
from learner.selection import CandidateScore, TrainResult, train_head

__all__ = [
    "HEAD_FAMILIES",
    "UNSCORED_FOLD",
    "ArtifactCorrupt",
    "ArtifactExists",
    "ArtifactNotFound",
    "Candidate",
    "CandidateScore",
    "Classifier",
    "DataShape",
    "Deployed",
    "DeployedHeads",
    "HeadFamily",
    "InvalidFunctionId",
    "LearnerError",
    "ModelStore",
    "ObjectModelStore",
    "NotEnoughData",
    "TemperatureScaledHead",
    "TrainResult",
    "apply_temperature",
    "assign_folds",
    "classification_metrics",
    "confusion_matrix_png",
    "cross_validated_predictions",
    "default_candidates",
    "expected_calibration_error",
    "fit_temperature",
    "ranked_predictions",
    "register_head_family",
    "train_head",
]
