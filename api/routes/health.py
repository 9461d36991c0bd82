"""Health: is the database reachable, is the broker reachable. No token needed."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from caretaker.settings import get_settings

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    database: bool
    broker: bool


@router.get("/health", response_model=Health)
def health(request: Request) -> JSONResponse:
    """Say whether the database and the broker answer; 503 when either does not."""
    database = True
    try:
        with request.app.state.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception:
        database = False
    broker_at = get_settings().mqtt_target()
    try:
        with socket.create_connection((broker_at.host, broker_at.port), timeout=2):
            broker = True
    except OSError:
        broker = False
    ok = database and broker
    body = Health(status="ok" if ok else "degraded", database=database, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
