"""Domain errors of the learner package.

``api/`` maps them to HTTP responses once: :class:`NotEnoughData` and :class:`InvalidFunctionId`
are client errors (4xx), :class:`ArtifactNotFound` is a 404 for a model version, and
:class:`ArtifactCorrupt` is a server-side problem (the stored file is damaged, was changed
after winnow wrote it, or cannot be verified).
"""

from __future__ import annotations


class LearnerError(Exception):
    """Base class of every error the learner raises on purpose; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotEnoughData(LearnerError):
    """The labelled samples cannot train and cross-validate a head (too few labels or samples)."""


class InvalidFunctionId(LearnerError, ValueError):
    """A function id cannot be used as a directory name in the model store."""


class ArtifactNotFound(LearnerError, LookupError):
    """No stored model artifact exists for that function id and version."""


class ArtifactExists(LearnerError):
    """A model version is immutable once saved; saving it again needs ``overwrite=True``."""


class ArtifactCorrupt(LearnerError):
    """A stored model artifact exists but cannot be read back (truncated, damaged or foreign)."""


class ArtifactTampered(ArtifactCorrupt):
    """A stored artifact's SHA-256 digest differs from the one recorded when it was written: it
    is refused unread (unpickling it could run any code)."""


class ArtifactUnverified(ArtifactCorrupt):
    """No digest was recorded for the artifact (an older winnow wrote it), so it cannot be
    verified and is not loaded."""


class TrainingCancelled(LearnerError):
    """The training was cancelled (:meth:`learner.scheduler.TrainingTracker.cancel`); nothing
    was recorded and the deployed version is unchanged."""
