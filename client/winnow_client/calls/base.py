"""A :class:`Call` (one request and the parser of its answer) and what the call modules share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from winnow_client.models import Page, Record

T = TypeVar("T")
U = TypeVar("U")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its answer (decoded JSON, or bytes when ``binary``)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    binary: bool = False

    def then(self, after: Callable[[T], U]) -> Call[U]:
        """The same request, with ``after`` applied to its parsed result."""
        return replace(self, parse=lambda body: after(self.parse(body)))  # type: ignore[return-value,arg-type]


def one(kind: type[R]) -> Callable[[Any], R]:
    return kind.from_json


def many(kind: type[R]) -> Callable[[Any], list[R]]:
    return lambda body: [kind.from_json(item) for item in body["data"]]


def paged(kind: type[R]) -> Callable[[Any], Page[R]]:
    return lambda body: Page([kind.from_json(item) for item in body["data"]], body["count"])


def nothing(_: Any) -> None:
    return None


def raw(body: Any) -> bytes:
    return body  # type: ignore[no-any-return]


def fn_path(function_id: str, *rest: str | int) -> str:
    return "/v1/functions/" + "/".join(quote(str(part), safe="") for part in (function_id, *rest))


def flag(value: bool) -> str:
    return "true" if value else "false"
