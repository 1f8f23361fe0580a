"""Reading an image input: JSON ``{data}`` (a data URI or URL) or a multipart ``file``."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.errors import ApiError, BadRequest, Unprocessable, UnsupportedMediaType
from api.fetch import UrlFetchError, fetch_url
from api.settings import Settings

M = TypeVar("M", bound=BaseModel)


def openapi_body(model: type[BaseModel], multipart_fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI request body for operations that take JSON or a multipart upload."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(by_alias=True)},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            **multipart_fields,
                        },
                    }
                },
            },
        }
    }


async def read_image_request(
    request: Request, model: type[M], settings: Settings
) -> tuple[bytes, M]:
    """Return the image bytes and the validated body fields.

    JSON bodies are validated against ``model``; multipart bodies carry the image as ``file`` and
    the other fields under their JSON names (``labelName`` maps to ``annotation.labelName``).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, model, settings)
    if content_type not in ("application/json", ""):
        raise UnsupportedMediaType(
            'send application/json with {"data": <data URI or URL>} or multipart/form-data '
            "with a 'file' part"
        )
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    body = _validate(model, payload)
    data = await resolve_data(body.data, settings)  # type: ignore[attr-defined]
    return data, body


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
        if key == "labelName":
            fields["annotation"] = {"labelName": value}
        else:
            fields[key] = value
    return data, _validate(model, fields)


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
            error = ApiError(f"cannot fetch image URL: {exc.message}")
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
