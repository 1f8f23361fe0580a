"""Request and response bodies (JSON in camelCase, as Nyckel's API), one module per resource.

Everything is re-exported here, so ``from service.schemas import X`` names any of them.
"""

from service.schemas.base import (
    MAX_START_INDEX,
    Body,
    ErrorMessage,
    Health,
    Page,
    ReviewerName,
    Schema,
    Timestamp,
    camel_keys,
)
from service.schemas.dashboard import ActivityHour, DashboardPublic, LabelCount
from service.schemas.functions import FunctionCreate, FunctionPublic, LabelCreate, LabelPublic
from service.schemas.invoke import (
    BatchInvokeInput,
    BatchInvokeResult,
    CaptureInfo,
    InvokeEntryError,
    InvokeResult,
    LabelConfidence,
)
from service.schemas.models import ModelVersionPublic, TrainingStatusPublic
from service.schemas.novelty import (
    DriftPublic,
    FunctionMetricsPublic,
    NoveltyHour,
    ProposalAccept,
    ProposalAccepted,
    ProposalPublic,
)
from service.schemas.review import (
    BulkAnnotate,
    BulkAnnotation,
    CapturePolicyBody,
    CapturePolicyPublic,
    ClaimedPage,
    Released,
    ReviewAnnotate,
    ReviewClaimBody,
    ReviewCounts,
    ReviewItemPublic,
    ReviewRelease,
    ReviewVote,
)
from service.schemas.samples import (
    Annotation,
    AnnotationPublic,
    ImageInput,
    LabelEventPublic,
    SampleCreate,
    SamplePublic,
)
from service.schemas.search import SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT, SearchHit, SearchQuery

__all__ = [
    "MAX_START_INDEX",
    "SEARCH_DEFAULT_COUNT",
    "SEARCH_MAX_COUNT",
    "ActivityHour",
    "Annotation",
    "AnnotationPublic",
    "BatchInvokeInput",
    "BatchInvokeResult",
    "Body",
    "BulkAnnotate",
    "BulkAnnotation",
    "CaptureInfo",
    "CapturePolicyBody",
    "CapturePolicyPublic",
    "DashboardPublic",
    "DriftPublic",
    "ErrorMessage",
    "FunctionCreate",
    "FunctionMetricsPublic",
    "FunctionPublic",
    "Health",
    "ImageInput",
    "LabelEventPublic",
    "InvokeEntryError",
    "InvokeResult",
    "LabelConfidence",
    "LabelCount",
    "LabelCreate",
    "LabelPublic",
    "ModelVersionPublic",
    "NoveltyHour",
    "Page",
    "ReviewerName",
    "ProposalAccept",
    "ProposalAccepted",
    "ProposalPublic",
    "ClaimedPage",
    "Released",
    "ReviewAnnotate",
    "ReviewClaimBody",
    "ReviewCounts",
    "ReviewRelease",
    "ReviewVote",
    "ReviewItemPublic",
    "SampleCreate",
    "SamplePublic",
    "Schema",
    "SearchHit",
    "SearchQuery",
    "Timestamp",
    "TrainingStatusPublic",
    "camel_keys",
]
