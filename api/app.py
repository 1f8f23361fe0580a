"""``create_app(settings)``: the composition root; builds every component, includes the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.body_guard import BodyGuardMiddleware
from api.deps import reject_nul_characters, require_scope
from api.errors import ERROR_RESPONSES, InternalErrorMiddleware, install_error_handlers
from api.nyckel.api_router import router as nyckel_router
from api.observability import HttpMetricsMiddleware
from api.routers import (
    capture,
    dashboard,
    docs,
    functions,
    health,
    invoke,
    keys,
    models,
    page,
    review,
    samples,
)
from api.routers.observability import router as metrics_router
from api.routers.proposals import router as proposals_router
from api.routers.search import router as search_router
from api.security_headers import SecurityHeadersMiddleware
from service import startup
from service.runtime import Runtime
from service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh service for ``settings``; tests build one per temp directory."""
    settings = settings or Settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        startup.start(runtime)
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="winnow",
        summary="Self-hosted image classification that learns from its own traffic.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_characters)],
        # Served by api/routers/docs.py from local files, not FastAPI's CDN-loading pages.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (health, functions, samples, invoke, capture, review, keys, page, docs):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(search_router, responses=ERROR_RESPONSES)  # similarity search
    app.include_router(dashboard.router, responses=ERROR_RESPONSES)  # the dashboard's data
    app.include_router(proposals_router, responses=ERROR_RESPONSES)  # new-class proposals
    # Training, versions and metrics: admin scope (and the key's tenant) on every route.
    app.include_router(
        models.router,
        dependencies=[Depends(require_scope("admin"))],
        responses=ERROR_RESPONSES,
    )
    app.include_router(nyckel_router)  # the Nyckel-compatible API over the same use cases
    docs.mount_assets(app)  # /static/docs, before page's /static: mounts match by prefix
    page.mount_assets(app)
    # Middleware, innermost first. Errors they answer pass through the ones added after them, so
    # every error is JSON {message}, counted, and carries the security headers.
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes)  # 413, deep JSON
    app.add_middleware(InternalErrorMiddleware)  # a JSON 500, and the connection kept
    if settings.metrics:  # off: no /metrics route (404) and no request timing
        app.include_router(metrics_router, responses=ERROR_RESPONSES)
        app.add_middleware(HttpMetricsMiddleware, metrics=runtime.metrics)
    app.add_middleware(SecurityHeadersMiddleware)  # CSP, nosniff, no framing
    return app
