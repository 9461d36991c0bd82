"""One JSON error shape for every failure: {"error": {"status", "code", "message", "details"}}.

Routes raise the domain's error kinds (`caretaker.errors`) or `ApiError`; the handlers here
turn those, request validation, and the database's refusals of bad values into 4xx answers
of that shape, so no refused input is ever a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import errors as pg
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from caretaker.errors import CaretakerError, Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
         503: "unavailable"}


class ApiError(HTTPException):
    """An error with a machine-readable code; raise it from routes and services."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code or CODES.get(status, "error")
        self.details = details


class ErrorInfo(BaseModel):
    """What went wrong: the HTTP status again, a stable code, a message for people."""

    status: int = Field(examples=[404])
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["work order 42 not found"])
    details: Any = Field(default=None, description="machine-readable particulars, e.g. the "
                         "invalid fields as [{loc, msg}]")


class ErrorBody(BaseModel):
    """The one error shape of every failed request."""

    error: ErrorInfo


# Documented on every operation (app-wide, at include_router).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The body cannot be read (not UTF-8, not the declared encoding)"),
        (401, "No token, or an unknown, expired or revoked token"),
        (403, "The token's role or site does not allow this"),
        (404, "No such record (or not within the token's site)"),
        (409, "The record's current state does not allow this, or it exists already"),
        (413, "The request body is larger than the API accepts"),
        (422, "The request is not valid (a field, a value, a reference, a NUL byte)"),
        (503, "The database is not reachable right now; try again"),
    )
}

# The one mapping from the domain's error kinds to HTTP.
# A class that is two kinds at once (a work order's "not found" is also one of its refusals)
# takes the first kind in its method resolution order.
STATUS_OF: dict[type[BaseException], int] = {NotFound: 404, Forbidden: 403, Conflict: 409,
                                             Invalid: 422}


def status_of(exc: BaseException) -> int:
    """The HTTP status for a domain error (by its kind); 422 for anything else refused."""
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 422


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "details": details}}


def error_response(status: int, message: str, *, code: str | None = None, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A response with the one error shape."""
    return JSONResponse(error_body(status, code or CODES.get(status, "error"), message, details),
                        status_code=status, headers=headers)


def _db_message(exc: psycopg.Error) -> str:
    diag = exc.diag.message_primary if exc.diag is not None else None
    return diag or str(exc).splitlines()[0]


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    return [method for method in METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.router.routes)]


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed(request))}
        return error_response(exc.status_code, str(exc.detail), code=getattr(exc, "code", None),
                              details=getattr(exc, "details", None), headers=headers)

    @app.exception_handler(CaretakerError)
    async def refused(_: Request, exc: CaretakerError) -> JSONResponse:
        return error_response(status_of(exc), exc.message, code=exc.code, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return error_response(422, "request is not valid", details=details)

    # A safety net: a value the database refuses is the caller's mistake, never a 500.
    @app.exception_handler(pg.UniqueViolation)
    async def duplicate(_: Request, exc: pg.UniqueViolation) -> JSONResponse:
        return error_response(409, f"exists already: {_db_message(exc)}", code="conflict")

    @app.exception_handler(pg.ForeignKeyViolation)
    async def bad_reference(_: Request, exc: pg.ForeignKeyViolation) -> JSONResponse:
        detail = exc.diag.message_detail or _db_message(exc)
        return error_response(422, f"refers to something that does not exist: {detail}",
                              code="invalid_reference")

    @app.exception_handler(pg.IntegrityError)
    async def not_allowed(_: Request, exc: pg.IntegrityError) -> JSONResponse:
        return error_response(422, _db_message(exc))

    # DataError: out-of-range numbers and times, bad formats, NUL bytes in text.
    @app.exception_handler(psycopg.DataError)
    async def bad_value(_: Request, exc: psycopg.DataError) -> JSONResponse:
        return error_response(422, f"a value is not acceptable: {_db_message(exc)}")

    # A number too large for a time or duration (timedelta, datetime) is a refused value too.
    @app.exception_handler(OverflowError)
    async def too_large(_: Request, exc: OverflowError) -> JSONResponse:
        log.info("value out of range: %s", exc)
        return error_response(422, f"a value is out of range: {exc}")

    @app.exception_handler(PoolTimeout)
    async def busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection in time: %s", exc)
        return error_response(503, "the database is busy or unreachable; try again",
                              headers={"Retry-After": "1"})

    @app.exception_handler(psycopg.OperationalError)
    async def unreachable(_: Request, exc: psycopg.OperationalError) -> JSONResponse:
        log.warning("database unreachable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return error_response(503, "the database is unreachable; try again",
                              headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal error", code="internal")
