"""Invoke, single and batch."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Body, Schema
from service.schemas.samples import ImageInput


class LabelConfidence(Schema):
    label_name: str
    label_id: str
    confidence: float


class CaptureInfo(Schema):
    captured: bool
    reason: str | None
    score: float | None
    item_id: str | None
    novelty: float | None = Field(
        default=None,
        description="Calibrated novelty, 0 to 1: the share of the function's labelled samples "
        "less unlike the labelled data than this input (0.99: more novel than 99% of them); "
        "null while the function has too few labelled samples. Above the capture policy's "
        "noveltyThreshold the input counts as novel traffic and is captured with reason novel.",
    )


class InvokeResult(Schema):
    """An invoke's answer. Before any model exists (no trained head and, without a text tower,
    no zero-shot head) it is 200 with ``labelName``, ``labelId``, ``confidence`` and
    ``modelVersion`` null and ``labelConfidences`` empty; ``capture`` then says whether the
    input was queued for a first label (reason ``cold_start``)."""

    label_name: str | None
    label_id: str | None
    confidence: float | None
    label_confidences: list[LabelConfidence]
    model_version: int | None = Field(
        description="The model version that answered: 0 is the zero-shot head built from the "
        "label names (backbones with a text tower, before a trained head beats it), or a "
        "preset's pretrained classifier (a function created with `preset`); 1 and up are "
        "trained heads, null means no model yet (cold start)."
    )
    capture: CaptureInfo | None = None


class BatchInvokeInput(Body):
    items: list[ImageInput] = Field(
        min_length=1,
        description="The images, answered in this order (at most --max-batch-invoke of them).",
    )


class InvokeEntryError(Schema):
    """One batch entry that failed on its own (a bad image); the other entries still answer."""

    status: int = Field(
        ge=400, le=599, description="The status single invoke would answer for this image."
    )
    message: str


class BatchInvokeResult(Schema):
    data: list[InvokeResult | InvokeEntryError]
