"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from caretaker.errors import CaretakerError, Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 422: "invalid", 503: "unavailable"}


class ApiError(HTTPException):
    """An error with a machine-readable code; raise it from routes and services."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code or CODES.get(status, "error")
        self.details = details


# The one mapping from the domain's error kinds to HTTP.
# A class that is two kinds at once (a work order's "not found" is also one of its refusals)
# takes the first kind in its method resolution order.
STATUS_OF: dict[type[BaseException], int] = {NotFound: 404, Forbidden: 403, Conflict: 409,
                                             Invalid: 422}


def status_of(exc: BaseException) -> int:
    """The HTTP status for a domain error (by its kind); 400 for anything else refused."""
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 400


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def _body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "details": details}}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or CODES.get(exc.status_code, "error")
        return JSONResponse(
            _body(exc.status_code, code, str(exc.detail), getattr(exc, "details", None)),
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(CaretakerError)
    async def refused(_: Request, exc: CaretakerError) -> JSONResponse:
        status = status_of(exc)
        return JSONResponse(_body(status, exc.code, exc.message, exc.details), status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(_body(422, "invalid", "request is not valid", details), 422)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(_body(500, "internal", "internal error"), 500)
