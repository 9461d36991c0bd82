"""Dependencies shared by the routes: a database connection and the caller's principal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout

from api.errors import ApiError
from caretaker import tokens
from caretaker.clock import Clock
from caretaker.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="a token from `caretaker token create`")


async def admitted(request: Request) -> AsyncIterator[None]:
    """Wait, without holding a worker thread, until one of the pool's connections is free.

    Routes and their dependencies run in a pool of worker threads; were a request to wait
    for a database connection inside one, a burst of clients larger than the database pool
    would occupy every thread waiting, and the requests holding connections could not get
    a thread to finish on. Requests queue here instead: at most the pool's size of them
    are past this point, each certain to get a connection at once.
    """
    gate: asyncio.Semaphore = request.app.state.gate
    try:
        await asyncio.wait_for(gate.acquire(), timeout=request.app.state.settings.db_pool_timeout)
    except TimeoutError:
        raise PoolTimeout("no database connection free in time") from None
    try:
        yield
    finally:
        gate.release()


def get_conn(request: Request, _: Annotated[None, Depends(admitted, scope="function")]
             ) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection; committed when the request succeeds, rolled back if it fails."""
    with request.app.state.pool.connection() as conn:
        yield conn


# scope="function": commit before the response is sent, so a client that has its 201 and
# asks again at once (or tells another client) always finds what it wrote.
Db = Annotated[psycopg.Connection[Any], Depends(get_conn, scope="function")]


async def get_clock(request: Request) -> Clock:
    """The app's clock (the system clock, or a test's)."""
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]


def get_principal(conn: Db,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                  ) -> Principal:
    """The principal behind the bearer token; 401 when missing, unknown, revoked or expired.

    The token is checked on the request's own connection (FastAPI gives a request one `Db`),
    so a request holds one pooled connection, never two.
    """
    if creds is None:
        raise ApiError(401, "missing bearer token", code="unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    principal = tokens.lookup(conn, creds.credentials)
    if principal is None:
        raise ApiError(401, "invalid, expired or revoked token", code="unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (admin is always admitted)."""
    allowed = {"admin", *roles}

    # async: a check this small runs on the event loop, not as a hop to a worker thread
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, f"role {principal.role!r} may not do this", code="forbidden")
        return principal

    return check


async def require_global_admin(principal: Annotated[Principal, Depends(require())]) -> Principal:
    """An admin token for every site: objects shared by all sites need one (403 otherwise)."""
    if principal.site_id is not None:
        raise ApiError(403, f"this admin token is limited to site {principal.site_id!r}; "
                       "shared objects need an admin token for every site", code="forbidden")
    return principal


ALL_ROLES = ("supervisor", "engineer", "frontdesk", "guard", "viewer")
Reader = Annotated[Principal, Depends(require(*ALL_ROLES))]
Admin = Annotated[Principal, Depends(require())]
GlobalAdmin = Annotated[Principal, Depends(require_global_admin)]


def scoped_site(principal: Principal, site: str | None) -> str | None:
    """The site a query must be limited to: the token's own site, if it has one.

    A site-scoped token asking for another site gets 403; routes put the returned value
    into their WHERE clause, so scoping holds in the query, not only in the UI.
    """
    if principal.site_id is None:
        return site
    if site is not None and site != principal.site_id:
        raise ApiError(403, f"this token is limited to site {principal.site_id!r}",
                       code="forbidden")
    return principal.site_id


def check_site(principal: Principal, site: str) -> None:
    """Refuse access to a single record of a site outside the token's scope (as 404)."""
    if principal.site_id is not None and site != principal.site_id:
        raise ApiError(404, "not found")
