"""The ``imagenet`` preset on a CLIP backbone is open_clip's own ImageNet zero-shot classifier
(``build_zero_shot_classifier`` over the same class names and templates): same top 5. On the tiny
test CLIP always; on the real default weights, with the cat photo, when they are cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip import build_zero_shot_classifier
from PIL import Image

from embeddings import DEFAULT_CLIP_SPEC, TINY_CLIP_SPEC, cached_clip_weights, load_backbone
from learner.presets import IMAGENET_LABELS, IMAGENET_NAMES, imagenet_zero_shot_head
from learner.zero_shot import PROMPT_TEMPLATES


def _photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(np.asarray(image)) for image in load_sample_images().images]


def _top5_pairs(spec: str, pictures: list[Image.Image]) -> tuple[list[list[str]], list[list[str]]]:
    backbone = load_backbone(spec, device="cpu")
    batch = torch.stack([backbone.preprocess(p) for p in pictures])
    head = imagenet_zero_shot_head(backbone.encode_text)
    served = head.predict_proba(backbone.encode(batch))
    classifier = build_zero_shot_classifier(
        backbone.model,
        tokenizer=backbone._tokenizer,  # type: ignore[attr-defined]
        classnames=IMAGENET_NAMES,
        templates=PROMPT_TEMPLATES,
        num_classes_per_batch=100,
        device="cpu",
        use_tqdm=False,
    )
    with torch.inference_mode():
        features = backbone.model.encode_image(batch)  # type: ignore[operator]
        features = features / features.norm(dim=-1, keepdim=True)
        direct = (100.0 * features @ classifier).numpy()
    top = [[IMAGENET_LABELS[i] for i in np.argsort(-row)[:5]] for row in served]
    reference = [[IMAGENET_LABELS[i] for i in np.argsort(-row)[:5]] for row in direct]
    return top, reference


def test_tiny_clip_preset_is_open_clips_zero_shot_classifier() -> None:
    top, reference = _top5_pairs(TINY_CLIP_SPEC, _photos())
    assert top == reference


@pytest.mark.clip_weights
@pytest.mark.skipif(
    cached_clip_weights("ViT-B-32", "laion2b_s34b_b79k") is None,
    reason="ViT-B-32 laion2b_s34b_b79k weights are not in the local Hugging Face cache",
)
def test_default_clip_preset_on_real_photos() -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image holds the cat photo")
    pictures = [Image.fromarray(np.asarray(data.chelsea())), *_photos()]
    top, reference = _top5_pairs(DEFAULT_CLIP_SPEC, pictures)
    assert top == reference
    assert top[0][0] in IMAGENET_LABELS[281:286]  # a domestic cat class
