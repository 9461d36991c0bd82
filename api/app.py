"""Builds the FastAPI application: routers, error shape, database pool, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.routes import (
    alarms,
    checkpoints,
    dead_letters,
    device_types,
    devices,
    gaps,
    guards,
    health,
    maintenance_windows,
    metrics,
    patrol_routes,
    patrol_status,
    rules,
    runs,
    scans,
    schedules,
    sites,
    telemetry,
    work_orders,
    zones,
)
from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    """The Caretaker API; the pool opens at start-up and closes at shutdown."""
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
    for router in (health.router, sites.router, zones.router, device_types.router,
                   devices.router, guards.router, checkpoints.router,
                   patrol_routes.router, schedules.router, scans.router, runs.router,
                   gaps.router, patrol_status.router, telemetry.router, dead_letters.router,
                   alarms.router, work_orders.router, maintenance_windows.router,
                   rules.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)  # /metrics, where Prometheus looks
    return app
