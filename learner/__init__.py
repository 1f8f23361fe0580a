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
    ArtifactTampered,
    ArtifactUnverified,
    InvalidFunctionId,
    LearnerError,
    NotEnoughData,
    TrainingCancelled,
)
from learner.few_shot import TextAnchoredFamily, TextAnchoredLogistic, TextPrior
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
    PLAIN_TEXT,
    classification_metrics,
    confusion_matrix_png,
    expected_calibration_error,
    figure_png,
)
from learner.presets import (
    IMAGENET_LABELS,
    PRESET_HEAD,
    PRESETS,
    PresetHead,
    UnknownPresetLabels,
    imagenet_classifier_head,
    imagenet_zero_shot_head,
)
from learner.selection import CandidateScore, TrainResult, train_head
from learner.semi_supervised import SpreadingFamily, SpreadThenLogistic
from learner.zero_shot import ZERO_SHOT_HEAD, LabelText, ZeroShotHead, build_zero_shot_head

__all__ = [
    "IMAGENET_LABELS",
    "PRESETS",
    "PRESET_HEAD",
    "PresetHead",
    "UnknownPresetLabels",
    "imagenet_classifier_head",
    "imagenet_zero_shot_head",
    "HEAD_FAMILIES",
    "PLAIN_TEXT",
    "UNSCORED_FOLD",
    "ZERO_SHOT_HEAD",
    "ArtifactCorrupt",
    "ArtifactExists",
    "ArtifactNotFound",
    "ArtifactTampered",
    "ArtifactUnverified",
    "Candidate",
    "CandidateScore",
    "Classifier",
    "DataShape",
    "Deployed",
    "DeployedHeads",
    "HeadFamily",
    "InvalidFunctionId",
    "LabelText",
    "LearnerError",
    "ModelStore",
    "ObjectModelStore",
    "NotEnoughData",
    "TrainingCancelled",
    "TemperatureScaledHead",
    "TextAnchoredFamily",
    "TextAnchoredLogistic",
    "SpreadThenLogistic",
    "SpreadingFamily",
    "TextPrior",
    "TrainResult",
    "ZeroShotHead",
    "apply_temperature",
    "assign_folds",
    "build_zero_shot_head",
    "classification_metrics",
    "confusion_matrix_png",
    "cross_validated_predictions",
    "default_candidates",
    "expected_calibration_error",
    "figure_png",
    "fit_temperature",
    "ranked_predictions",
    "register_head_family",
    "train_head",
]
