"""Builds the FastAPI application: routers, error shape, limits, database pool, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from api import errors
from api.limits import RequestLimits
from api.routes import metrics
from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def operation_id(route: APIRoute) -> str:
    """An operation's id in OpenAPI: its route function's name (unique across the API)."""
    return route.name


def create_app(settings: Settings | None = None, *, routers: Sequence[APIRouter],
               clock: Clock = system_clock) -> FastAPI:
    """The Caretaker API with `routers` under /api/v1; the pool opens at start-up."""
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
                  docs_url=f"{API_PREFIX}/docs", openapi_url=f"{API_PREFIX}/openapi.json",
                  generate_unique_id_function=operation_id)
    app.state.clock = clock
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(RequestLimits, max_body=settings.api_max_body_bytes)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, responses=errors.ERROR_RESPONSES)
    # /metrics, where Prometheus looks
    app.include_router(metrics.router, responses=errors.ERROR_RESPONSES)
    return app
