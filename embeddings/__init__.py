"""Safe image decoding, frozen backbones, batching and device placement.

Knows nothing about functions, the database or HTTP: bytes in, RGB images and vectors out.
"""

from embeddings.backbone import Backbone, resolve_device
from embeddings.backbones import (
    AUTO_SPEC,
    DEFAULT_CLIP_SPEC,
    VALID_SPEC_FORMS,
    canonical_backbone_spec,
    load_backbone,
)
from embeddings.clip_backbone import TINY_CLIP_SPEC, ClipBackbone
from embeddings.clip_loading import cached_clip_weights, parse_clip_spec
from embeddings.decode import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    declared_pixels,
    decode_image,
    sniff_format,
    sniff_mime_type,
)
from embeddings.efficientnet_backbone import (
    EFFICIENTNET_LITE0_SPEC,
    EfficientNetLite0Backbone,
    ImageNetClassifier,
    build_efficientnet_lite0,
)
from embeddings.encoder import BatchingEncoder
from embeddings.encoder_protocol import EncoderStats, ImageEncoder, ImageEncoderPool
from embeddings.errors import (
    BackboneUnavailable,
    CorruptImage,
    DecodeBudgetExhausted,
    EmptyImage,
    EncoderClosed,
    EncoderOverloaded,
    ImageTooLarge,
    InvalidImage,
    TextNotSupported,
    UnsupportedImageFormat,
)
from embeddings.imagenet import imagenet_classifier
from embeddings.pixel_budget import PixelBudget
from embeddings.pixels import BACKGROUND_COLOR, to_rgb
from embeddings.pool import EncoderPool
from embeddings.text import backbone_has_text_tower, encode_text_or_raise

__all__ = [
    "ALLOWED_FORMATS",
    "AUTO_SPEC",
    "BACKGROUND_COLOR",
    "DEFAULT_CLIP_SPEC",
    "DEFAULT_MAX_PIXELS",
    "EFFICIENTNET_LITE0_SPEC",
    "TINY_CLIP_SPEC",
    "VALID_SPEC_FORMS",
    "Backbone",
    "BackboneUnavailable",
    "BatchingEncoder",
    "ClipBackbone",
    "CorruptImage",
    "DecodeBudgetExhausted",
    "EfficientNetLite0Backbone",
    "ImageNetClassifier",
    "EmptyImage",
    "EncoderClosed",
    "EncoderOverloaded",
    "EncoderPool",
    "EncoderStats",
    "ImageEncoder",
    "ImageEncoderPool",
    "ImageTooLarge",
    "PixelBudget",
    "InvalidImage",
    "TextNotSupported",
    "UnsupportedImageFormat",
    "backbone_has_text_tower",
    "build_efficientnet_lite0",
    "cached_clip_weights",
    "canonical_backbone_spec",
    "declared_pixels",
    "decode_image",
    "imagenet_classifier",
    "encode_text_or_raise",
    "load_backbone",
    "parse_clip_spec",
    "resolve_device",
    "sniff_format",
    "sniff_mime_type",
    "to_rgb",
]
