"""Reading image inputs: JSON ``{data}`` (a data URI or URL) or a multipart ``file``, and the
several images of a batch (JSON ``{items: [{data}, ...]}`` or several ``file`` parts)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.fetch import UrlFetchError, fetch_url
from service.errors import (
    BadRequest,
    PayloadTooLarge,
    ServiceError,
    Unprocessable,
    UnsupportedMediaType,
)
from service.schemas import BatchInvokeInput
from service.settings import Settings

M = TypeVar("M", bound=BaseModel)

# URLs of one batch fetched at once: enough to overlap their latency, few enough to leave the
# shared thread pool to other requests.
_CONCURRENT_FETCHES = 8


def openapi_body(
    model: type[BaseModel], multipart_fields: dict[str, Any], *, several_files: bool = False
) -> dict[str, Any]:
    """OpenAPI request body for operations that take JSON or a multipart upload (one ``file``
    part, or with ``several_files`` one or more)."""
    binary = {"type": "string", "format": "binary"}
    file = {"type": "array", "items": binary, "minItems": 1} if several_files else binary
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _inline_defs(model.model_json_schema(by_alias=True))
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": file, **multipart_fields},
                    }
                },
            },
        }
    }


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in place: inside an OpenAPI document ``#/$defs/...``
    would point at the document's root, where they are not (request models are not recursive)."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return inline(schema)  # type: ignore[no-any-return]


async def read_image_request(
    request: Request, model: type[M], settings: Settings
) -> tuple[bytes, M]:
    """Return the image bytes and the validated body fields.

    JSON bodies are validated against ``model``; multipart bodies carry the image as ``file`` and
    the other fields under their JSON names (``labelName`` and ``annotatedBy`` map to
    ``annotation.labelName`` and ``annotation.annotatedBy``).
    """
    if _is_multipart(request, '{"data": <data URI or URL>}', "a 'file' part"):
        return await _read_multipart(request, model, settings)
    body = _validate(model, await _json_payload(request))
    data = await resolve_data(body.data, settings)  # type: ignore[attr-defined]
    return data, body


async def read_images_request(request: Request, settings: Settings) -> list[bytes | ServiceError]:
    """The images of a batch, in order: JSON ``{items: [{data}, ...]}`` or ``file`` parts.

    An entry whose data cannot be read (a malformed data URI, a URL that cannot be fetched) is
    its ServiceError, so it fails alone; what concerns the whole request (its content type,
    malformed JSON, no items, more than ``settings.max_batch_invoke``) is raised.
    """
    limit = settings.max_batch_invoke
    if _is_multipart(request, '{"items": [{"data": <data URI or URL>}, ...]}', "'file' parts"):
        return list(await _read_multipart_files(request, limit))
    body = _validate(BatchInvokeInput, await _json_payload(request))
    if len(body.items) > limit:
        raise _too_many_images(limit, f"got {len(body.items)}")
    fetches = asyncio.Semaphore(_CONCURRENT_FETCHES)

    async def read(data: str) -> bytes | ServiceError:
        try:
            async with fetches:
                return await resolve_data(data, settings)
        except ServiceError as exc:
            return exc

    return list(await asyncio.gather(*(read(item.data) for item in body.items)))


def _is_multipart(request: Request, json_shape: str, file_parts: str) -> bool:
    """True for a multipart body, False for JSON (or no content type); 415 for anything else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return True
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"send application/json with {json_shape} or multipart/form-data with {file_parts}"
        )
    return False


async def _json_payload(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


async def _read_multipart(request: Request, model: type[M], settings: Settings) -> tuple[bytes, M]:
    form = await request.form(max_files=1, max_fields=20, max_part_size=1024 * 1024)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("multipart body needs the image in a part named 'file'")
    data = await upload.read()
    fields: dict[str, Any] = {"data": "multipart:file"}
    for key, value in form.multi_items():
        if key == "file" or not isinstance(value, str):
            continue
        if key in ("labelName", "annotatedBy"):
            fields.setdefault("annotation", {})[key] = value
        else:
            fields[key] = value
    return data, _validate(model, fields)


async def _read_multipart_files(request: Request, limit: int) -> list[bytes]:
    try:
        form = await request.form(max_files=limit, max_fields=20, max_part_size=1024 * 1024)
    except StarletteHTTPException as exc:
        if str(exc.detail).startswith("Too many files"):
            raise _too_many_images(limit, "more 'file' parts were sent") from exc
        raise
    unknown = sorted({key for key, _ in form.multi_items() if key != "file"})
    if unknown:
        raise Unprocessable(f"unknown multipart fields {unknown}: send each image as a 'file' part")
    uploads = form.getlist("file")
    if not uploads or not all(isinstance(upload, UploadFile) for upload in uploads):
        raise BadRequest("multipart body needs the images in parts named 'file'")
    return [await upload.read() for upload in uploads if isinstance(upload, UploadFile)]


def _too_many_images(limit: int, sent: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a batch invoke takes at most {limit} images (--max-batch-invoke); {sent}: split the batch"
    )


def _validate(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        raise Unprocessable("; ".join(parts)) from exc


async def resolve_data(data: str, settings: Settings) -> bytes:
    """Bytes of a data URI, or of an http(s) URL fetched with SSRF protection."""
    stripped = data.strip()
    if stripped.startswith("data:"):
        return decode_data_uri(stripped)
    if stripped.lower().startswith(("http://", "https://")):
        try:
            return await run_in_threadpool(
                fetch_url,
                stripped,
                timeout=settings.url_timeout,
                max_bytes=settings.max_body_bytes,
                allow_private=settings.allow_private_urls,
            )
        except UrlFetchError as exc:
            error = ServiceError(f"cannot fetch image URL: {exc.message}")
            error.status = exc.status
            raise error from exc
    raise BadRequest("'data' must be a data URI (data:image/...;base64,...) or an http(s) URL")


def decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise BadRequest("malformed data URI: missing ','")
    if not header.endswith(";base64"):
        raise BadRequest("data URI must be base64-encoded (data:<mime>;base64,<payload>)")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"data URI payload is not valid base64: {exc}") from exc
