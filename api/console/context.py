"""Who a console page is for: the one dependency every page takes (session, site, language),
and the way a dependency leaves with a page of its own (the login form, a 404 page)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import psycopg
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from api import pages, sessions
from api.console import data
from api.deps import Db
from reports import i18n
from reports.settings import site_settings

ALARM_HANDLERS = frozenset({"admin", "supervisor", "engineer"})
POLL_SECONDS = 5


class Leave(Exception):  # noqa: N818 (not an error: a page that ends the request early)
    """Raised by a dependency to answer with this response instead of the route's."""

    def __init__(self, response: Response) -> None:
        super().__init__("leave")
        self.response = response


class PageRoute(APIRoute):
    """A console route: a `Leave` raised by its dependencies is answered with its response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Leave as leave:
                return leave.response

        return handle


class Context:
    """Who is asking, about which site, in which language and time zone."""

    def __init__(self, request: Request, conn: psycopg.Connection[Any],
                 session: sessions.Session, site: dict[str, Any],
                 all_sites: list[dict[str, Any]], language: str) -> None:
        self.request, self.conn, self.session, self.site = request, conn, session, site
        self.sites, self.language = all_sites, language
        self.user = session.principal
        self.now: datetime = request.app.state.clock()

    @property
    def site_id(self) -> str:
        return str(self.site["id"])

    def gettext(self, message: str) -> str:
        return i18n.gettext_for(self.language).gettext(message)

    def when(self, at: datetime | None) -> str:
        """A date and time on the site's clock, in the page's language."""
        return i18n.format_datetime(at, self.language, self.site["timezone"]) if at else "—"

    def render(self, template: str, active: str, *, status: int = 200,
               **extra: Any) -> Response:
        """A page of the console, with the live fingerprint it is polled against."""
        lang = self.language

        def number(value: float | None) -> str:
            return i18n.format_number(value, lang)

        return pages.page(template, lang, status=status, user=self.user, site=self.site,
                          sites=self.sites, active=active, when=self.when, number=number,
                          csrf_token=self.session.csrf_token, path=self.request.url.path,
                          poll=POLL_SECONDS, now=self.now, countdown=countdown,
                          can_handle_alarms=self.user.role in ALARM_HANDLERS,
                          stamp=data.stamp(self.conn, self.site_id), **extra)

    def refuse(self, active: str, message: str, status: int = 403) -> Leave:
        """A page saying why not, in the page's language (raise it)."""
        return Leave(self.render("error.html", active, status=status, message=message))


def countdown(seconds: float) -> str:
    """A deadline's distance as the board's clocks show it, H:MM:SS (hours past 24 too);
    console.js ticks it on in the same form."""
    whole = int(abs(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def to_login(request: Request) -> Response:
    """The way to the login form, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    where = "/login" if target == "/" else "/login?next=" + quote(target, safe="")
    return RedirectResponse(where, status_code=303)


def session_of(request: Request, conn: psycopg.Connection[Any]) -> sessions.Session | None:
    """The live session the request's cookie stands for, if any."""
    cookie = request.cookies.get(sessions.COOKIE)
    return None if cookie is None else sessions.lookup(
        conn, cookie, now=request.app.state.clock(),
        idle=request.app.state.settings.session_idle_timeout)


def page_context(request: Request, conn: Db) -> Context:
    """The page's context; else `Leave` to the login form, to the start page (no site yet),
    or to a 404 page for a site the user may not see (scoping is in the query that lists
    the sites)."""
    session = session_of(request, conn)
    if session is None:
        raise Leave(to_login(request))
    user = session.principal
    visible = data.sites(conn, user.site_id)
    asked = request.query_params.get("site")
    site = next((s for s in visible if s["id"] == asked), None) if asked else (
        visible[0] if visible else None)
    site_language = site_settings(conn, site["id"]).language if site else None
    language = pages.language_for(request, user.language, site_language)
    if not visible and not asked:
        # No site loaded yet (or none of the user's): who is logged in, and a way out.
        raise Leave(pages.page("home.html", language, user=user,
                               csrf_token=session.csrf_token))
    if site is None:
        message = i18n.gettext_for(language).gettext("No such site, or not yours to see.")
        raise Leave(pages.page("error.html", language, status=404, message=message))
    return Context(request, conn, session, site, visible, language)


Page = Annotated[Context, Depends(page_context)]
