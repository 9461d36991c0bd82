"""Dependencies shared by the routes: a database connection and the caller's principal
(from a bearer token, or from a person's session cookie)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout

from api import sessions
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


def get_principal(request: Request, conn: Db,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                  csrf: Annotated[str | None, Depends(sessions.presented_csrf)]) -> Principal:
    """The principal behind the bearer token, or else behind the session cookie.

    401 when neither is given, or the token is unknown, revoked or expired, or the session
    ended, expired or went idle. An unsafe request (not GET/HEAD/OPTIONS) made with the
    session cookie must carry the session's CSRF token (403 otherwise); a bearer token needs
    none (a browser never sends one by itself). Checked on the request's own connection
    (FastAPI gives a request one `Db`), so a request holds one pooled connection, never two.
    """
    if creds is not None:
        principal = tokens.lookup(conn, creds.credentials)
        if principal is None:
            raise ApiError(401, "invalid, expired or revoked token", code="unauthorized",
                           headers={"WWW-Authenticate": "Bearer"})
        return principal
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None:
        raise ApiError(401, "missing bearer token (or log in at /login)", code="unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    session = sessions.lookup(conn, cookie, now=request.app.state.clock(),
                              idle=request.app.state.settings.session_idle_timeout)
    if session is None:
        raise ApiError(401, "the session has ended or expired; log in again at /login",
                       code="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in sessions.SAFE_METHODS and not sessions.csrf_matches(
            session.csrf_token, csrf):
        raise ApiError(403, f"missing or wrong CSRF token: send the session's token as the "
                       f"{sessions.CSRF_HEADER} header or the {sessions.CSRF_FIELD} form field",
                       code="csrf")
    return session.principal


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
