"""Builds the FastAPI application: routers, error shape, database pool, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api import errors
from api.routes import metrics
from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, routers: Sequence[APIRouter],
               clock: Clock = system_clock) -> FastAPI:
    """The Caretaker API with `routers` under /api/v1; the pool opens at start-up."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = make_pool(settings, name="api")
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(title="Caretaker", version="1", lifespan=lifespan,
                  docs_url=f"{API_PREFIX}/docs", openapi_url=f"{API_PREFIX}/openapi.json")
    app.state.clock = clock
    app.state.settings = settings
    errors.install(app)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)  # /metrics, where Prometheus looks
    return app
