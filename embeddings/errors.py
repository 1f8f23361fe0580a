"""Domain errors of the embeddings package.

``api/`` maps them to HTTP responses once: every :class:`InvalidImage` is a client error (4xx),
:class:`EncoderOverloaded` and :class:`DecodeBudgetExhausted` are "try again later" (503 +
Retry-After) and
:class:`BackboneUnavailable` is a server configuration problem.
"""

from __future__ import annotations


class InvalidImage(ValueError):
    """The submitted bytes are not an image winnow accepts; ``message`` is safe to show a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmptyImage(InvalidImage):
    """Zero bytes were submitted."""


class UnsupportedImageFormat(InvalidImage):
    """The bytes are an image (or something else) in a format outside the allow-list."""


class CorruptImage(InvalidImage):
    """The header looked like an allowed format but the data is truncated or malformed."""


class ImageTooLarge(InvalidImage):
    """The header declares more pixels than allowed (decompression bomb protection)."""


class BackboneUnavailable(RuntimeError):
    """A backbone's weights or code cannot be loaded; the message carries the underlying reason."""


class EncoderOverloaded(RuntimeError):
    """The batching encoder's queue is full; callers should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DecodeBudgetExhausted(RuntimeError):
    """Decoded pixels in flight stayed at the budget for the whole wait; callers should retry after
    ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EncoderClosed(RuntimeError):
    """The batching encoder was closed before (or while) the request was queued."""


class TextNotSupported(ValueError):
    """The backbone has no text tower (e.g. EfficientNet-Lite0), so it cannot embed text."""
