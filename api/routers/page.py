"""GET /review: the reviewer's page (plain HTML + JS, no build step)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["review"])


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_page() -> HTMLResponse:
    return HTMLResponse(files("api").joinpath("static/review.html").read_text(encoding="utf-8"))
