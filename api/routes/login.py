"""The login form, logging out, and the start page: people's sessions (api/sessions.py)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api import pages, sessions
from api.deps import Db
from caretaker.settings import Settings
from caretaker.users import LockPolicy, Outcome, authenticate
from reports.i18n import gettext_for
from reports.settings import site_settings

router = APIRouter(include_in_schema=False)
PHONE_PAGE = "/m/"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _local(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (never another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _session(request: Request, conn: Db) -> sessions.Session | None:
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None:
        return None
    return sessions.lookup(conn, cookie, now=request.app.state.clock(),
                           idle=_settings(request).session_idle_timeout)


def _form(request: Request, language: str, *, status: int = 200, error: str | None = None,
          username: str = "", next_: str = "/") -> Response:
    """The login form with its login CSRF token (also set as its cookie): the browser's
    own, when it has one, so forms open in several tabs all stay good."""
    token = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{24,64}", token):
        token = secrets.token_urlsafe(24)
    response = pages.page("login.html", language, status=status, error=error,
                          username=username, csrf_token=token, next=_local(next_))
    sessions.set_cookie(response, sessions.LOGIN_CSRF_COOKIE, token,
                        secure=sessions.secure(request, _settings(request)), path="/login")
    return response


@router.get("/login")
def login_form(request: Request, conn: Db, next: str = "/") -> Response:  # noqa: A002
    """The login form (or straight on, for a browser that is logged in already)."""
    if _session(request, conn) is not None:
        return RedirectResponse(_local(next), status_code=303)
    return _form(request, pages.language_for(request), next_=next)


@router.post("/login")
def login(request: Request, conn: Db,
          username: Annotated[str, Form(max_length=256)] = "",
          password: Annotated[str, Form(max_length=4096)] = "",
          csrf_token: Annotated[str, Form(max_length=256)] = "",
          lang: Annotated[str, Form(max_length=16)] = "",
          next: Annotated[str, Form(max_length=2048)] = "/") -> Response:  # noqa: A002
    """Check a user name and password; on success start a session and go to `next` (or /)."""
    language = pages.language_for(request, lang)
    _ = gettext_for(language).gettext
    settings = _settings(request)
    if not sessions.csrf_matches(request.cookies.get(sessions.LOGIN_CSRF_COOKIE, ""),
                                 csrf_token or None):
        return _form(request, language, status=403, username=username, next_=next,
                     error=_("The form had expired. Please log in again."))
    now = request.app.state.clock()
    address = request.client.host if request.client else "unknown"
    result = authenticate(conn, username.strip(), password, address=address, now=now,
                          policy=LockPolicy(settings.login_max_failures,
                                            settings.login_address_max_failures,
                                            settings.login_lockout))
    if result.outcome is Outcome.LOCKED:
        return _form(request, language, status=429, username=username, next_=next,
                     error=_("Too many failed attempts. Please try again later."))
    if result.outcome is Outcome.DISABLED:
        return _form(request, language, status=403, username=username, next_=next,
                     error=_("This account is disabled. Ask an administrator."))
    if result.outcome is not Outcome.OK or result.user is None:
        return _form(request, language, status=401, username=username, next_=next,
                     error=_("Wrong user name or password."))
    value, _session_ = sessions.start(conn, result.user, now=now, settings=settings)
    target = _local(next)
    if target == "/" and result.user.role == "guard":
        target = PHONE_PAGE  # a guard's start page is the phone page, not the console
    response = RedirectResponse(target, status_code=303)
    secure = sessions.secure(request, settings)
    sessions.set_cookie(response, sessions.COOKIE, value, secure=secure)
    sessions.clear_cookie(response, sessions.LOGIN_CSRF_COOKIE, secure=secure, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, conn: Db,
           csrf: Annotated[str | None, Depends(sessions.presented_csrf)]) -> Response:
    """End this browser's session (its CSRF token is required) and go to the login form."""
    session = _session(request, conn)
    if session is not None and not sessions.csrf_matches(session.csrf_token, csrf):
        language = pages.language_for(request, session.principal.language)
        return pages.page("error.html", language, status=403, message=gettext_for(
            language).gettext("The form had expired. Please go back, reload and try again."))
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is not None:
        sessions.end(conn, cookie)
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_cookie(response, sessions.COOKIE,
                          secure=sessions.secure(request, _settings(request)))
    return response


@router.get("/")
def home(request: Request, conn: Db) -> Response:
    """The start page: who is logged in, and a way out (the login form when nobody is)."""
    session = _session(request, conn)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    user = session.principal
    site_language = site_settings(conn, user.site_id).language if user.site_id else None
    return pages.page("home.html", pages.language_for(request, user.language, site_language),
                      user=user, csrf_token=session.csrf_token)
