"""Builds the FastAPI application: routers, error shape, limits, database pool, metrics,
the login pages and the API docs with their assets served locally."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api import errors, pages
from api.limits import RequestLimits
from api.routes import login, metrics
from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.settings import Settings, get_settings

API_PREFIX = "/api/v1"
# Swagger UI's files, vendored unchanged from the npm package swagger-ui-dist of this version
# (api/static/vendor/swagger-ui/VERSION): the docs page loads nothing from the internet.
SWAGGER_UI_VERSION = "5.35.0"
SWAGGER_UI = "/static/vendor/swagger-ui"


def operation_id(route: APIRoute) -> str:
    """An operation's id in OpenAPI: its route function's name (unique across the API)."""
    return route.name


def create_app(settings: Settings | None = None, *, routers: Sequence[APIRouter],
               pages_routers: Sequence[APIRouter] = (),
               clock: Clock = system_clock) -> FastAPI:
    """The Caretaker API with `routers` under /api/v1 and `pages_routers` (people's pages)
    at the root, ahead of the login router's start page; the pool opens at start-up."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The whole pool opened at start: a burst of clients does not wait for connections
        # to be made (each costs a password exchange) one after another.
        app.state.pool = make_pool(settings, name="api", min_size=settings.db_pool_size)
        # As many requests at a time as the pool has connections (see api.deps.admitted).
        app.state.gate = asyncio.Semaphore(app.state.pool.max_size)
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(title="Caretaker", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=f"{API_PREFIX}/openapi.json",
                  generate_unique_id_function=operation_id)
    app.state.clock = clock
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(RequestLimits, max_body=settings.api_max_body_bytes)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, responses=errors.ERROR_RESPONSES)
    # /metrics, where Prometheus looks
    app.include_router(metrics.router, responses=errors.ERROR_RESPONSES)
    # People's pages: the console, then the login form, logout and the start page (which the
    # console's Plant page, at /, takes the place of); their styles and the docs' assets.
    for router in pages_routers:
        app.include_router(router)
    app.include_router(login.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI, from Caretaker's own copy (ReDoc is not served: it would need fonts
        and a bundle of its own)."""
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json", title="Caretaker API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png", oauth2_redirect_url=None,
            # No spec validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})

    return app
