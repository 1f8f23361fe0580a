"""GET /docs (Swagger UI), /docs/oauth2-redirect and /redoc, with their assets served by this app.

FastAPI's built-in pages load Swagger UI and ReDoc from a CDN, which leaves them blank on a server
without internet. The same files ship in the fastapi-offline package; :func:`mount_assets` serves
them under :data:`ASSETS_URL`. Each page's inline script or style is allowed by hash in its CSP
(ReDoc's page: any inline style; see :data:`REDOC_POLICY`). ReDoc's script is served with its
one CDN address (the sidebar's Redocly logo) pointed at the local favicon: :func:`redoc_js`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from api.security_headers import allow_inline

ASSETS_URL = "/static/docs"
REDOC_JS_URL = f"{ASSETS_URL}/redoc.standalone.js"  # served by redoc_js, ahead of the mount
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

# ReDoc's styled-components add <style> elements as it renders, with no way to give them a nonce,
# and its search runs in a worker made from a blob: URL. The page holds no key; scripts stay strict.
REDOC_POLICY = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}

router = APIRouter(include_in_schema=False)


def mount_assets(app: FastAPI) -> None:
    """Serve fastapi-offline's Swagger UI, ReDoc and favicon files at :data:`ASSETS_URL`."""
    app.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs")


def _root(request: Request) -> str:
    """The path the app is mounted under behind a proxy ("" when at the root)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    return allow_inline(
        get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
    )


@router.get(OAUTH2_REDIRECT_URL)
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return allow_inline(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    return allow_inline(
        get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=root + REDOC_JS_URL,
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        ),
        REDOC_POLICY,
    )


@cache
def _redoc_js_source() -> bytes:
    source = files("fastapi_offline").joinpath("static/redoc.standalone.js").read_text("utf-8")
    # relative to the /redoc page, so it holds under a proxy's root path too
    return source.replace(REDOC_CDN_LOGO, f"{ASSETS_URL.lstrip('/')}/favicon.png").encode()


@router.get(REDOC_JS_URL)
def redoc_js() -> Response:
    """fastapi-offline's ReDoc bundle, fetching nothing from a CDN (the page's CSP refuses it)."""
    return Response(_redoc_js_source(), media_type="text/javascript")
