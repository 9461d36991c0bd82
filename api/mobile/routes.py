"""The phone page for guards and technicians at /m/: the app shell, its data, its web-app
manifest and its service worker (scope /m/), after the same login as the console.

The shell is one page whose script (api/static/m/app.js) does the rest: it reads
`/m/today.json`, judges scans against it (offline too), queues them in IndexedDB and sends
them through `POST /api/v1/scans`. The service worker keeps the shell and its assets, so the
page opens with no network; every file is Caretaker's own.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from api import pages, sessions
from api.console import data as console_data
from api.deps import Db
from api.mobile import data
from reports import i18n
from reports.settings import site_settings

router = APIRouter(prefix="/m", include_in_schema=False)

ASSETS = pages.STATIC / "m"
# The files the service worker keeps (with the page itself, /m/): what opens offline.
SHELL_FILES = ("m/app.js", "m/app.css", "m/icon-192.png", "m/icon-512.png",
               "vendor/jsqr/jsQR.js")
# The shell may show photos the guard just took (blob: URLs); otherwise the pages' policy.
HEADERS = {**pages.HEADERS, "Content-Security-Policy": (
    "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; form-action 'self';"
    " base-uri 'none'")}
SCRIPT = "text/javascript; charset=utf-8"


@cache
def version() -> str:
    """A fingerprint of the shell's files: a new one makes phones fetch the shell anew."""
    digest = hashlib.sha256()
    for name in (*SHELL_FILES, "m/sw.js"):
        digest.update((pages.STATIC / name).read_bytes())
    digest.update((pages.TEMPLATES / "mobile" / "app.html").read_bytes())
    return digest.hexdigest()[:12]


def shell_urls() -> list[str]:
    """The URLs the service worker caches at install, exactly as the page asks for them."""
    return [f"/static/{name}?v={version()}" for name in SHELL_FILES] + [
        "/m/manifest.webmanifest"]


def _session(request: Request, conn: Db) -> sessions.Session | None:
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None:
        return None
    return sessions.lookup(conn, cookie, now=request.app.state.clock(),
                           idle=request.app.state.settings.session_idle_timeout)


def _site(conn: Db, session: sessions.Session, asked: str | None) -> dict[str, Any] | None:
    """The site the page is about: the user's own, else the one asked for, else the first."""
    visible = console_data.sites(conn, session.principal.site_id)
    if asked:
        return next((s for s in visible if s["id"] == asked), None)
    return visible[0] if visible else None


def strings(language: str) -> dict[str, str]:
    """What the script says, in the page's language."""
    _ = i18n.gettext_for(language).gettext
    return {
        "on_time": _("On time"), "early": _("Early"), "late": _("Late"),
        "wrong_route": _("Not on your rounds now"), "unknown_tag": _("Unknown tag"),
        "repeat": _("Scanned already"), "queued": _("Waiting to send"),
        "sending": _("Sending…"), "sent": _("Sent"), "refused": _("Refused"),
        "photo_waiting": _("Photo waits for its ticket"), "online": _("Online"),
        "offline": _("Offline"), "waiting_n": _("%(n)s waiting"),
        "login_again": _("Log in again to send what is waiting."),
        "log_in": _("Log in"),
        "sync_failed": _("Could not send; trying again shortly."),
        "all_sent": _("Everything is sent."), "next": _("Next checkpoint"),
        "none_next": _("No checkpoint due in the next hours."),
        "late_list": _("Late"), "open_now": _("open now"), "opens_in": _("opens in %(n)s min"),
        "run_done": _("%(done)s of %(total)s done"), "no_runs": _("No rounds for you now."),
        "no_guard": _("This login names no guard, so it cannot record scans."),
        "out_of_range": _("Out of range: expected %(expected)s"),
        "confirm_out": _("%(n)s answer(s) out of range will be reported as findings. "
                         "Send again to confirm."),
        "checklist_queued": _("Checklist answers kept"), "hazard_queued": _("Hazard kept"),
        "yes": _("yes"), "no": _("no"), "expected": _("expected %(expected)s"),
        "camera_failed": _("The camera could not be opened; type the tag instead."),
        "nfc_failed": _("NFC could not be read; type the tag instead."),
        "nfc_ready": _("Hold the phone to the tag."), "discard": _("Discard"),
        "confirm_logout": _("%(n)s scan(s) are not sent yet and would stay on this phone. "
                            "Log out anyway?"),
        "scan": _("Scan"), "checklist": _("Checklist"), "hazard": _("Hazard"),
        "disposition_matched": _("matched to its round"),
        "disposition_unscheduled": _("no round expected it"),
        "disposition_repeat": _("repeat"), "disposition_unknown_tag": _("unknown tag"),
        "pending_check": _("being checked"), "ticket": _("ticket #%(id)s"),
        "verification": _("Alarm check"), "due_by": _("by %(time)s"),
    }


@router.get("/")
def shell(request: Request, conn: Db) -> Response:
    """The phone page (the login form first, for a browser not logged in)."""
    session = _session(request, conn)
    if session is None:
        target = "/m/" + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
    user = session.principal
    site = _site(conn, session, request.query_params.get("site"))
    site_language = site_settings(conn, site["id"]).language if site else None
    language = pages.language_for(request, user.language, site_language)
    html = pages.environment(language).get_template("mobile/app.html").render(
        user=user, site=site, csrf_token=session.csrf_token, version=version(),
        strings=strings(language))
    return Response(html, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/today.json")
def today(request: Request, conn: Db) -> Response:
    """The guard's runs around now, the site's checkpoints and their recent scans."""
    session = _session(request, conn)
    if session is None:
        return JSONResponse({"detail": "log in again"}, status_code=401,
                            headers={"Cache-Control": "no-store"})
    user = session.principal
    site = _site(conn, session, request.query_params.get("site"))
    if site is None:
        return JSONResponse({"detail": "no such site, or not yours to see"}, status_code=404,
                            headers={"Cache-Control": "no-store"})
    now = request.app.state.clock()
    guard = data.guard(conn, site["id"], user.guard_id) if user.guard_id else None
    body = {
        "now": data.ms(now), "site": site, "user": user.name, "role": user.role,
        "guard": guard,
        "runs": data.runs(conn, site["id"], guard["id"], now=now) if guard else [],
        "checkpoints": data.checkpoints(conn, site["id"]),
        "scans": data.recent_scans(conn, site["id"], guard["id"], now=now) if guard else [],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web-app manifest: installable, opening at /m/ in its own window."""
    body = {"name": "Caretaker", "short_name": "Caretaker", "start_url": "/m/",
            "scope": "/m/", "display": "standalone", "orientation": "portrait",
            "background_color": "#ffffff", "theme_color": "#1f4e79",
            "icons": [{"src": f"/static/m/icon-{n}.png?v={version()}", "sizes": f"{n}x{n}",
                       "type": "image/png", "purpose": "any"} for n in (192, 512)]}
    return Response(json.dumps(body), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from /m/ so that its scope is the phone page's."""
    script = (ASSETS / "sw.js").read_text().replace("__VERSION__", version()).replace(
        "__SHELL__", json.dumps(shell_urls()))
    return Response(script, media_type=SCRIPT, headers={
        "Cache-Control": "no-cache", "Service-Worker-Allowed": "/m/",
        "X-Content-Type-Options": "nosniff"})


LABEL_MAKERS = frozenset({"admin", "supervisor"})


def qr_svg(value: str) -> Markup:
    """A checkpoint tag's QR code as inline SVG (a full QR code: phones' decoders read no
    Micro QR)."""
    svg = segno.make_qr(value, error="m").svg_inline(scale=4, border=2, omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's own markup; the value is encoded in it, not echoed


@router.get("/labels")
def labels(request: Request, conn: Db) -> Response:
    """A printable sheet of a site's checkpoint labels: name, tag and its QR code (SVG), for
    the QR stickers a phone scans (beside an NFC tag, or instead of one)."""
    session = _session(request, conn)
    if session is None:
        target = "/m/labels" + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
    user = session.principal
    site = _site(conn, session, request.query_params.get("site"))
    language = pages.language_for(request, user.language,
                                  site_settings(conn, site["id"]).language if site else None)
    _ = i18n.gettext_for(language).gettext
    if user.role not in LABEL_MAKERS:
        return pages.page("error.html", language, status=403,
                          message=_("Checkpoint labels are printed by a supervisor."))
    if site is None:
        return pages.page("error.html", language, status=404,
                          message=_("No such site, or not yours to see."))
    points = [{**cp, "qr": qr_svg(cp["tag"])} for cp in data.checkpoints(conn, site["id"])]
    return pages.page("mobile/labels.html", language, site=site, points=points)
