"""GET /review and GET /dashboard: pages in plain HTML + JS (no build step); files under /static."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(tags=["review"])


def mount_assets(app: FastAPI) -> None:
    """Serve ``api/static`` (the page's script and style) at /static.

    Mounts match by prefix in the order they are added: mount this after any /static/... mount.
    """
    app.mount("/static", StaticFiles(packages=[("api", "static")]), name="static")


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_page() -> HTMLResponse:
    return HTMLResponse(files("api").joinpath("static/review.html").read_text(encoding="utf-8"))


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    return HTMLResponse(files("api").joinpath("static/dashboard.html").read_text(encoding="utf-8"))
