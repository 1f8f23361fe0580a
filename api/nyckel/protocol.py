"""Nyckel's wire shapes (camelCase JSON) as pydantic models.

Fields winnow has no counterpart for are accepted only empty, so a client relying on them gets a
422 saying so rather than a silent no-op. Responses leave absent fields out (the SDK tests keys
with ``in``), so routes serialise them with ``response_model_exclude_none``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from service.schemas import Body, Schema


class Token(BaseModel):
    """OAuth2 client-credentials answer; snake_case as OAuth2 (RFC 6749) has it."""

    access_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"


class FunctionCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    input: str = Field(description="Only `Image` (winnow classifies images).")
    output: str = Field(description="Only `Classification`.")

    @field_validator("input")
    @classmethod
    def _image_only(cls, value: str) -> str:
        if value != "Image":
            raise ValueError(f"winnow serves Image functions only; {value!r} is not supported")
        return value

    @field_validator("output")
    @classmethod
    def _classification_only(cls, value: str) -> str:
        if value != "Classification":
            raise ValueError(
                f"winnow serves Classification functions only; {value!r} (tags, detection, "
                "search) is not supported"
            )
        return value


class Function(Schema):
    id: str
    name: str
    input: Literal["Image"] = "Image"
    output: Literal["Classification"] = "Classification"


class FunctionState(Function):
    """``GET /v0.9/functions/{id}``: ``Tuning`` once a model serves it, ``Annotating`` before."""

    state: Literal["Annotating", "Tuning"]


class FunctionMetrics(Schema):
    """``GET /v0.9/functions/{id}/metrics``.

    Every sample has a prediction once a model is deployed (the deployed head on its stored
    embedding), so ``predictionCount`` is ``sampleCount`` then and 0 before; ``isTraining`` is
    true while a training runs or is queued.
    """

    sample_count: int
    annotated_sample_count: int
    # label id -> samples annotated with it (labels with at least one)
    annotated_label_counts: dict[str, int]
    prediction_count: int
    is_training: bool


def _empty(name: str, value: Any) -> Any:
    if value:
        raise ValueError(f"winnow does not support {name}; send it empty or leave it out")
    return value


class LabelCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _no_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _empty("label metadata", value)  # type: ignore[no-any-return]


class Label(Schema):
    id: str
    name: str
    description: str | None = None


class AnnotationIn(Body):
    """A label by name or by id (one of them)."""

    label_name: str | None = Field(default=None, min_length=1, max_length=200)
    label_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_label(self) -> AnnotationIn:
        if (self.label_name is None) == (self.label_id is None):
            raise ValueError("send exactly one of labelName and labelId")
        return self


class SampleCreate(Body):
    data: str = Field(min_length=1, description="A data URI or an http(s) URL of the image.")
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    annotation: AnnotationIn | None = None
    sample_sets: list[dict[str, Any]] | None = None

    @field_validator("sample_sets")
    @classmethod
    def _no_sample_sets(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return _empty("sample sets", value)  # type: ignore[no-any-return]


class AnnotationOut(Schema):
    label_id: str


class Prediction(Schema):
    label_id: str
    confidence: float


class Sample(Schema):
    id: str
    data: str = Field(description="URL of the stored image (send the same bearer token).")
    external_id: str | None = None
    annotation: AnnotationOut | None = None
    prediction: Prediction | None = None


class DuplicateSample(Schema):
    """409 body of a sample create whose externalId or image the function already holds."""

    message: str
    existing_sample_id: str


class InvokeIn(Body):
    data: str = Field(min_length=1, description="A data URI or an http(s) URL of the image.")


class InvokeOut(Schema):
    label_name: str
    label_id: str
    confidence: float
