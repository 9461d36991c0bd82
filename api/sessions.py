"""People's sessions: a random cookie stored only as its hash, with idle and absolute
timeouts, and the CSRF token every unsafe request made with it must carry."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi import Request, Response
from psycopg.rows import dict_row

from caretaker.settings import Settings
from caretaker.tokens import Principal
from caretaker.users import User

COOKIE = "caretaker_session"
# The login form's own CSRF token (double submit: this cookie and the form's hidden field),
# so another site cannot log a browser in as someone else.
LOGIN_CSRF_COOKIE = "caretaker_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A session's last-seen time is written at most this often (a write per request would not be).
TOUCH_EVERY = timedelta(minutes=1)
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# Roles that walk the site with the phone page (/m/): their sessions last a shift.
FIELD_ROLES = frozenset({"guard", "engineer"})


@dataclass(frozen=True)
class Session:
    """A live session: who it is, and the CSRF token its unsafe requests carry."""

    principal: Principal
    csrf_token: str
    expires_at: datetime


def hash_id(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def principal_of(user: User) -> Principal:
    """The principal a user's session acts as (a token of the same role and site would)."""
    return Principal(-user.id, user.name, user.role, user.site_id, user.guard_id,
                     user_id=user.id, language=user.language)


def lifetime(role: str, settings: Settings) -> tuple[timedelta, timedelta]:
    """A new session's idle and absolute timeouts: a shift for the field roles."""
    if role in FIELD_ROLES:
        return settings.session_field_idle_timeout, settings.session_field_absolute_timeout
    return settings.session_idle_timeout, settings.session_absolute_timeout


def start(conn: psycopg.Connection[Any], user: User, *, now: datetime,
          settings: Settings) -> tuple[str, Session]:
    """A new session for a user who has just logged in: the cookie's value and the session."""
    conn.execute("DELETE FROM sessions WHERE expires_at <= %s"
                 " OR last_seen_at <= %s - coalesce(idle_timeout, %s)",
                 (now, now, settings.session_idle_timeout))
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    idle, absolute = lifetime(user.role, settings)
    expires = now + absolute
    conn.execute("INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at,"
                 " expires_at, idle_timeout) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (hash_id(value), user.id, csrf, now, now, expires, idle))
    return value, Session(principal_of(user), csrf, expires)


def lookup(conn: psycopg.Connection[Any], value: str, *, now: datetime,
           idle: timedelta) -> Session | None:
    """The session a cookie stands for; None once ended, expired, idle or its user disabled.

    `idle` is the timeout of sessions started without one of their own (before the field
    roles' longer sessions); a session started since keeps the one it was given."""
    if not value or len(value) > 128:
        return None
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT s.csrf_token, s.expires_at, s.last_seen_at, u.id, u.name, u.role, u.site_id,"
        " u.guard_id, u.language FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id_hash = %s AND s.expires_at > %s"
        " AND s.last_seen_at > %s - coalesce(s.idle_timeout, %s) AND NOT u.disabled",
        (hash_id(value), now, now, idle)).fetchone()
    if row is None:
        return None
    if row["last_seen_at"] <= now - TOUCH_EVERY:
        conn.execute("UPDATE sessions SET last_seen_at = %s WHERE id_hash = ("
                     " SELECT id_hash FROM sessions WHERE id_hash = %s FOR UPDATE SKIP LOCKED)",
                     (now, hash_id(value)))
    principal = Principal(-row["id"], row["name"], row["role"], row["site_id"],
                          row["guard_id"], user_id=row["id"], language=row["language"])
    return Session(principal, row["csrf_token"], row["expires_at"])


def renew(conn: psycopg.Connection[Any], value: str, *, now: datetime,
          settings: Settings) -> None:
    """Push a session's absolute expiry a full term past now (the wall display's viewer
    session, renewed while the display polls; never a session that has already ended).
    Written at most once a `TOUCH_EVERY`, like the idle time `lookup` keeps."""
    term = now + settings.session_absolute_timeout
    conn.execute("UPDATE sessions SET expires_at = %s WHERE id_hash = %s AND expires_at > %s"
                 " AND expires_at <= %s", (term, hash_id(value), now, term - TOUCH_EVERY))


def end(conn: psycopg.Connection[Any], value: str) -> None:
    """End the session a cookie stands for (nothing happens for an unknown one)."""
    conn.execute("DELETE FROM sessions WHERE id_hash = %s", (hash_id(value),))


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Whether the presented CSRF token is the expected one (compared in constant time)."""
    return presented is not None and hmac.compare_digest(expected.encode(),
                                                         presented.encode())


async def presented_csrf(request: Request) -> str | None:
    """The CSRF token an unsafe request made with a session cookie carries, if any: the
    `X-CSRF-Token` header, else the `csrf_token` field of a form body."""
    if (request.method in SAFE_METHODS or "authorization" in request.headers
            or COOKIE not in request.cookies):
        return None
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(FORMS):
        # FastAPI has parsed a form body already when the route takes one (Starlette keeps
        # it on the request); otherwise it is read here, within the body-size limit.
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def secure(request: Request, settings: Settings) -> bool:
    """Whether cookies are marked Secure: on HTTPS, or always when the setting says so."""
    return settings.session_cookie_secure or request.url.scheme == "https"


def set_cookie(response: Response, name: str, value: str, *, secure: bool,
               path: str = "/") -> None:
    """A cookie scripts cannot read, sent on this site's own requests and top-level links
    (SameSite=Lax) and kept until the browser closes (the server decides expiry)."""
    response.set_cookie(name, value, httponly=True, samesite="lax", secure=secure, path=path)


def clear_cookie(response: Response, name: str, *, secure: bool, path: str = "/") -> None:
    response.delete_cookie(name, httponly=True, samesite="lax", secure=secure, path=path)
