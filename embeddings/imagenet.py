"""Which backbones carry their own ImageNet classifier (for the ``imagenet`` preset).

Keyed by canonical backbone spec, so the application layer asks without loading a model (and
whatever encoder runs the backbone: in process or on a Ray Serve replica).
"""

from __future__ import annotations

from collections.abc import Callable

from embeddings.efficientnet_backbone import (
    EFFICIENTNET_LITE0_SPEC,
    ImageNetClassifier,
    efficientnet_lite0_classifier,
)

_CLASSIFIERS: dict[str, Callable[[], ImageNetClassifier]] = {
    EFFICIENTNET_LITE0_SPEC: efficientnet_lite0_classifier,
}


def imagenet_classifier(spec: str) -> ImageNetClassifier | None:
    """The ImageNet classifier shipped with backbone ``spec``, or None if it has none (CLIP
    backbones classify ImageNet zero-shot through their text tower instead).

    Args:
        spec: a canonical backbone spec.

    Raises:
        BackboneUnavailable: the backbone has a classifier but its weights cannot be read.
    """
    load = _CLASSIFIERS.get(spec)
    return None if load is None else load()
