"""winnow's Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio), same methods.

from winnow_client import Client

with Client("http://127.0.0.1:8000", api_key="wn_...") as winnow:
    fn = winnow.ensure_function("IsCatOrDog", labels=["cat", "dog"])
    winnow.upload_samples(fn.id, [("cat1.jpg", "cat"), ("dog1.jpg", "dog")])
    winnow.train(fn.id)
    print(winnow.invoke(fn.id, "mystery.jpg").label_name)
"""

from winnow_client.aio import AsyncClient
from winnow_client.bulk import SampleUpload
from winnow_client.calls import Call
from winnow_client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    WinnowError,
)
from winnow_client.models import (
    AcceptedProposal,
    ApiKey,
    CapturePolicy,
    ClaimedPage,
    CreatedKey,
    Dashboard,
    Function,
    Label,
    LabelEvent,
    ModelVersion,
    Page,
    Prediction,
    Proposal,
    ReviewCounts,
    Reviewer,
    ReviewItem,
    ReviewVote,
    Sample,
    SearchHit,
    TrainingStatus,
    UploadReport,
)
from winnow_client.sync import Client
from winnow_client.transport import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AcceptedProposal",
    "ApiKey",
    "AsyncClient",
    "BadRequest",
    "Call",
    "CapturePolicy",
    "ClaimedPage",
    "Client",
    "Conflict",
    "CreatedKey",
    "Dashboard",
    "Forbidden",
    "Function",
    "Label",
    "LabelEvent",
    "ModelVersion",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Prediction",
    "Proposal",
    "RateLimited",
    "RetryPolicy",
    "ReviewCounts",
    "ReviewItem",
    "ReviewVote",
    "Reviewer",
    "Sample",
    "SampleUpload",
    "SearchHit",
    "ServerError",
    "TrainingStatus",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UploadReport",
    "WinnowError",
]
