"""Text embeddings for zero-shot heads and text capture rules: one entry point for every encoder.

A backbone with a text tower (open_clip CLIP, ``tiny-clip``) maps prompts into the same space as
its images, so ``cosine(image, text("a photo of a cat"))`` ranks labels without any sample.
Backbones say so with ``has_text_tower``; one without (EfficientNet-Lite0) has none, and asking
it for text raises :class:`embeddings.errors.TextNotSupported` rather than returning nothing, so
callers check ``has_text_tower`` first (the in-process and the Ray encoders answer the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embeddings.errors import TextNotSupported


def backbone_has_text_tower(backbone: Any) -> bool:
    """Whether ``backbone`` can embed text (its ``has_text_tower``; False when it lacks one).

    Args:
        backbone: a :class:`embeddings.backbone.Backbone`.
    """
    return bool(getattr(backbone, "has_text_tower", False))


def encode_text_or_raise(backbone: Any, prompts: Sequence[str]) -> np.ndarray:
    """``(len(prompts), dim)`` float32 unit rows for ``prompts`` in the backbone's image space.

    Args:
        backbone: a :class:`embeddings.backbone.Backbone`.
        prompts: free text such as ``"a photo of a cat"``.

    Raises:
        TextNotSupported: the backbone has no text tower.
    """
    vectors = backbone.encode_text(list(prompts)) if backbone_has_text_tower(backbone) else None
    if vectors is None:
        raise TextNotSupported(f"backbone {backbone.spec} has no text tower: it cannot embed text")
    return np.ascontiguousarray(vectors, dtype=np.float32)
