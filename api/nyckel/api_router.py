"""Routes of the Nyckel-compatible API, mounted at ``/nyckel``: point the SDK's ``server_url`` at
``http://<host>:<port>/nyckel``. Each route is a few lines; :mod:`api.nyckel.serving` translates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import RuntimeDep, client_address, public_base_url, verify_caller
from api.errors import ERROR_RESPONSES
from api.nyckel import protocol as wire
from api.nyckel import serving
from api.nyckel.serving import full_id
from service import functions as function_service
from service.auth import Principal, Scope
from service.errors import BadRequest, NotFound
from store import Sample

router = APIRouter(prefix="/nyckel", tags=["nyckel"], responses=ERROR_RESPONSES)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="NyckelToken",
    description="The access_token from POST /nyckel/connect/token (it is the API key itself).",
)
_ID = {"min_length": 1, "max_length": 200}


def _caller(scope: Scope | None) -> Callable[..., Principal]:
    def dependency(
        request: Request,
        rt: RuntimeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        raw = request.path_params.get("function_id")
        principal = verify_caller(
            rt,
            credentials.credentials if credentials else None,
            function_id=full_id("function", raw) if raw else None,
            address=client_address(request),
        )
        if scope is not None:
            principal.require(scope)
        return principal

    return dependency


AnyKey = Annotated[Principal, Depends(_caller(None))]
InvokeKey = Annotated[Principal, Depends(_caller("invoke"))]
AnnotateKey = Annotated[Principal, Depends(_caller("annotate"))]
AdminKey = Annotated[Principal, Depends(_caller("admin"))]


def _function_id(function_id: Annotated[str, Path(**_ID)]) -> str:
    return full_id("function", function_id)


def _label_id(label_id: Annotated[str, Path(**_ID)]) -> str:
    return full_id("label", label_id)


def _sample_id(sample_id: Annotated[str, Path(**_ID)]) -> str:
    return full_id("sample", sample_id)


FunctionId = Annotated[str, Depends(_function_id)]
LabelId = Annotated[str, Depends(_label_id)]
SampleId = Annotated[str, Depends(_sample_id)]


def _image_url(request: Request, rt: RuntimeDep) -> serving.ImageUrl:
    """Stored images are served by winnow's own API; the Nyckel token is accepted there too."""
    base = public_base_url(request, rt.settings)
    return lambda s: f"{base}/v1/functions/{s.function_id}/samples/{s.id}/image"


ImageUrlDep = Annotated[Callable[[Sample], str], Depends(_image_url)]


def _ok() -> Response:
    """Nyckel answers deletes with 200 (winnow's own API: 204)."""
    return Response(status_code=200)


@router.post("/connect/token")
def token(
    request: Request,
    response: Response,
    rt: RuntimeDep,
    client_id: Annotated[str, Form(**_ID)],
    client_secret: Annotated[str, Form(**_ID)],
    grant_type: Annotated[str, Form(max_length=100)],
) -> wire.Token:
    """OAuth2 client credentials: ``client_id`` is an API key's id (``key_...``), and
    ``client_secret`` the key; the access token is the key itself."""
    if grant_type != "client_credentials":
        raise BadRequest("grant_type must be client_credentials")
    principal = verify_caller(rt, client_secret, function_id=None, address=client_address(request))
    answer = serving.exchange_token(principal, client_id, client_secret)
    # The answer holds a credential: never cached (RFC 6749, 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return answer


# functions ---------------------------------------------------------------------------------------


@router.post("/v1/functions")
def create_function(body: wire.FunctionCreate, rt: RuntimeDep, caller: AdminKey) -> wire.Function:
    caller.require_every_function("create functions")
    return serving.create_function(rt, body)


@router.get("/v1/functions")
def list_functions(rt: RuntimeDep, caller: AnyKey) -> list[wire.Function]:
    return serving.list_functions(rt, caller)


@router.get("/v1/functions/{function_id}")
def read_function(function_id: FunctionId, rt: RuntimeDep, _: AnyKey) -> wire.Function:
    return serving.read_function(rt, function_id)


@router.delete("/v1/functions/{function_id}")
def delete_function(function_id: FunctionId, rt: RuntimeDep, _: AdminKey) -> Response:
    function_service.delete_function(rt, function_id)
    return _ok()


@router.get("/v0.9/functions/{function_id}")
def function_state(function_id: FunctionId, rt: RuntimeDep, _: AnyKey) -> wire.FunctionState:
    return serving.function_state(rt, function_id)


@router.get("/v0.9/functions/{function_id}/metrics")
def function_metrics(function_id: FunctionId, rt: RuntimeDep, _: AnyKey) -> wire.FunctionMetrics:
    return serving.function_metrics(rt, function_id)


# labels ------------------------------------------------------------------------------------------


@router.post("/v1/functions/{function_id}/labels", response_model_exclude_none=True)
def create_label(
    function_id: FunctionId, body: wire.LabelCreate, rt: RuntimeDep, _: AdminKey
) -> wire.Label:
    return serving.create_label(rt, function_id, body)


@router.get("/v1/functions/{function_id}/labels", response_model_exclude_none=True)
def list_labels(function_id: FunctionId, rt: RuntimeDep, _: AnyKey) -> list[wire.Label]:
    return serving.list_labels(rt, function_id)


@router.get("/v1/functions/{function_id}/labels/{label_id}", response_model_exclude_none=True)
def read_label(function_id: FunctionId, label_id: LabelId, rt: RuntimeDep, _: AnyKey) -> wire.Label:
    return serving.read_label(rt, function_id, label_id)


@router.put("/v1/functions/{function_id}/labels/{label_id}", response_model_exclude_none=True)
def update_label(
    function_id: FunctionId, label_id: LabelId, body: wire.LabelCreate, rt: RuntimeDep, _: AdminKey
) -> wire.Label:
    return serving.update_label(rt, function_id, label_id, body)


@router.delete("/v1/functions/{function_id}/labels/{label_id}")
def delete_label(
    function_id: FunctionId, label_id: LabelId, rt: RuntimeDep, _: AdminKey
) -> Response:
    function_service.delete_label(rt, function_id, label_id)
    return _ok()


# samples -----------------------------------------------------------------------------------------


@router.post(
    "/v1/functions/{function_id}/samples",
    response_model_exclude_none=True,
    responses={409: {"model": wire.DuplicateSample, "description": "Already held: its id"}},
)
async def create_sample(
    function_id: FunctionId,
    body: wire.SampleCreate,
    rt: RuntimeDep,
    image_url: ImageUrlDep,
    caller: AnnotateKey,
) -> wire.Sample:
    result = await serving.create_sample(rt, function_id, body, image_url, caller)
    if isinstance(result, wire.DuplicateSample):
        return JSONResponse(result.model_dump(by_alias=True), status_code=409)  # type: ignore[return-value]
    return result


@router.get("/v1/functions/{function_id}/samples", response_model_exclude_none=True)
def list_samples(
    function_id: FunctionId,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    image_url: ImageUrlDep,
    _: AnnotateKey,
    batch_size: Annotated[int, Query(alias="batchSize", ge=1, le=1000)] = 100,
    sort_by: Annotated[Literal["creation"], Query(alias="sortBy")] = "creation",
    sort_order: Annotated[
        Literal["ascending", "descending"], Query(alias="sortOrder")
    ] = "ascending",
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[wire.Sample]:
    """A page of samples; a ``Link: <path?...>; rel="next"`` header names the next page by path,
    as the SDK joins it to the server's base URL."""
    page, more = serving.list_samples(
        rt,
        function_id,
        offset=offset,
        batch_size=batch_size,
        newest_first=sort_order == "descending",
        image_url=image_url,
    )
    if more:
        query = {"batchSize": batch_size, "sortBy": sort_by, "sortOrder": sort_order}
        query["offset"] = offset + len(page)
        response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return page


@router.get("/v1/functions/{function_id}/samples/{sample_id}", response_model_exclude_none=True)
def read_sample(
    function_id: FunctionId,
    sample_id: SampleId,
    rt: RuntimeDep,
    image_url: ImageUrlDep,
    _: AnnotateKey,
) -> wire.Sample:
    return serving.read_sample(rt, function_id, sample_id, image_url)


@router.delete("/v1/functions/{function_id}/samples/{sample_id}")
def delete_sample(
    function_id: FunctionId, sample_id: SampleId, rt: RuntimeDep, caller: AdminKey
) -> Response:
    serving.delete_sample(rt, function_id, sample_id, caller)
    return _ok()


@router.put(
    "/v1/functions/{function_id}/samples/{sample_id}/annotation", response_model_exclude_none=True
)
def set_annotation(
    function_id: FunctionId,
    sample_id: SampleId,
    body: wire.AnnotationIn,
    rt: RuntimeDep,
    image_url: ImageUrlDep,
    caller: AnnotateKey,
) -> wire.Sample:
    return serving.set_annotation(rt, function_id, sample_id, body, image_url, caller)


@router.delete(
    "/v1/functions/{function_id}/samples/{sample_id}/annotation", response_model_exclude_none=True
)
def remove_annotation(
    function_id: FunctionId,
    sample_id: SampleId,
    rt: RuntimeDep,
    image_url: ImageUrlDep,
    caller: AnnotateKey,
) -> wire.Sample:
    return serving.remove_annotation(rt, function_id, sample_id, image_url, caller)


# invoke ------------------------------------------------------------------------------------------


@router.post("/v1/functions/{function_id}/invoke")
async def invoke(
    function_id: FunctionId,
    body: wire.InvokeIn,
    rt: RuntimeDep,
    _: InvokeKey,
    model_id: Annotated[str | None, Query(alias="modelId", max_length=20)] = None,
) -> wire.InvokeOut:
    """Classify an image with the deployed model (``modelId``: another version, by number);
    the input may be captured for review, as on winnow's own invoke."""
    return await serving.invoke(rt, function_id, body, model_id)


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
)
def unsupported(path: str, request: Request) -> None:
    raise NotFound(
        f"winnow's Nyckel-compatible API does not serve {request.method} /nyckel/{path}: it "
        "covers image classification functions, labels, samples, invoke and metrics (see "
        "docs/nyckel.md, 'Coming from Nyckel')"
    )
