"""The staff console's pages (Plant, Device, Alarms, Work orders, Patrol, Inspections, KPIs &
reports, Handover), the forms they post, and the small JSON the live pages poll."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api import pages, sessions
from api.console import data, spark
from api.deps import Db
from api.patrol import own_guard
from reports import handover, i18n, kpis, periods, store, weekly
from reports.settings import site_settings
from rules.patrol import queries
from tickets import work_orders

router = APIRouter(include_in_schema=False)
ALARM_HANDLERS = frozenset({"admin", "supervisor", "engineer"})
RECENT = timedelta(days=7)
POLL_SECONDS = 5


class Context:
    """Who is asking, about which site, in which language and time zone."""

    def __init__(self, request: Request, session: sessions.Session, site: dict[str, Any],
                 all_sites: list[dict[str, Any]], language: str) -> None:
        self.request, self.session, self.site = request, session, site
        self.sites, self.language = all_sites, language
        self.user = session.principal
        self.now: datetime = request.app.state.clock()

    def render(self, template: str, active: str, *, status: int = 200,
               **extra: Any) -> Response:
        tz = self.site["timezone"]
        lang = self.language

        def when(at: datetime | None) -> str:
            return i18n.format_datetime(at, lang, tz) if at else "—"

        def number(value: float | None) -> str:
            return i18n.format_number(value, lang)

        return pages.page(template, lang, status=status, user=self.user, site=self.site,
                          sites=self.sites, active=active, when=when, number=number,
                          csrf_token=self.session.csrf_token, path=self.request.url.path,
                          poll=POLL_SECONDS,
                          can_handle_alarms=self.user.role in ALARM_HANDLERS, **extra)


def _login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    where = "/login" if target == "/" else "/login?next=" + quote(target, safe="")
    return RedirectResponse(where, status_code=303)


def context(request: Request, conn: Db) -> Context | Response:
    """The page's context, or the way to the login form (or a 404 page for a site the user
    may not see: scoping is in the query that lists the sites)."""
    cookie = request.cookies.get(sessions.COOKIE)
    session = None if cookie is None else sessions.lookup(
        conn, cookie, now=request.app.state.clock(),
        idle=request.app.state.settings.session_idle_timeout)
    if session is None:
        return _login(request)
    user = session.principal
    visible = data.sites(conn, user.site_id)
    asked = request.query_params.get("site")
    site = next((s for s in visible if s["id"] == asked), None) if asked else (
        visible[0] if visible else None)
    site_language = site_settings(conn, site["id"]).language if site else None
    language = pages.language_for(request, user.language, site_language)
    if not visible and not asked:
        # No site loaded yet (or none of the user's): who is logged in, and a way out.
        return pages.page("home.html", language, user=user, csrf_token=session.csrf_token)
    if site is None:
        message = i18n.gettext_for(language).gettext("No such site, or not yours to see.")
        return pages.page("error.html", language, status=404, message=message)
    return Context(request, session, site, visible, language)



@router.get("/")
def plant(request: Request, conn: Db) -> Response:
    """Plant: devices by zone with state, last reading, a day's sparkline; alarms first."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site = ctx.site["id"]
    devices = data.plant(conn, site, now=ctx.now)
    for dev in devices:
        dev["points"] = spark.points(dev["spark"])
    return ctx.render("console/plant.html", "plant", devices=devices,
                      alarms=data.active_alarms(conn, site, limit=20),
                      stamp=data.stamp(conn, site))


@router.get("/devices/{device_id}")
def device(request: Request, conn: Db, device_id: str, range: str = "24h") -> Response:  # noqa: A002
    """Device: each metric over a chosen range with thresholds and alarms; recent tickets."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site = ctx.site["id"]
    dev = data.device(conn, site, device_id[:64])
    if dev is None:
        message = i18n.gettext_for(ctx.language).gettext("No such device.")
        return ctx.render("error.html", "plant", status=404, message=message)
    span = data.RANGES.get(range, data.RANGES["24h"])
    start = ctx.now - span
    series = data.series(conn, site, dev["id"], start=start, end=ctx.now)
    limits = data.thresholds(conn, site, dev)
    alarms = data.device_alarms(conn, site, dev["id"], start=start, end=ctx.now)
    charts = []
    for metric, spec in dev["metrics"].items():
        unit = str((spec or {}).get("unit", ""))
        points = series.get(metric, [])
        charts.append({"metric": metric, "unit": unit, "points": points,
                       "thresholds": limits.get(metric, []),
                       "alarms": [{"at": a["raised_at"].timestamp(), "severity": a["severity"]}
                                  for a in alarms if a["metric"] == metric]})
    chart_data = {"start": start.timestamp(), "end": ctx.now.timestamp(),
                  "tz": ctx.site["timezone"], "charts": charts}
    return ctx.render("console/device.html", "plant", device=dev, charts=charts,
                      chart_data=chart_data, alarms=alarms, ranges=list(data.RANGES),
                      range=range if range in data.RANGES else "24h",
                      tickets=data.device_tickets(conn, site, dev["id"]),
                      stamp=data.stamp(conn, site))


@router.get("/alarms")
def alarms(request: Request, conn: Db) -> Response:
    """Alarms: active (worst first) with acknowledge and clear; those cleared this week."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site = ctx.site["id"]
    return ctx.render("console/alarms.html", "alarms",
                      active_alarms=data.active_alarms(conn, site),
                      recent=data.recent_alarms(conn, site, since=ctx.now - RECENT),
                      stamp=data.stamp(conn, site))


# The board's buttons: action → (the states it starts from, whether it needs a note).
STEPS = {action: (step.frm, action in ("cancel", "reopen"))
         for action, step in work_orders.TRANSITIONS.items() if action != "rework"}


def actions_for(role: str, card: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps a role may take on a card now, each with whether it asks for a note."""
    out = []
    for action, (frm, needs_note) in STEPS.items():
        if card["state"] in frm and work_orders.may(role, action, card["source"]):
            # closing before resolution needs a reason too
            note = needs_note or (action == "close" and card["state"] != "resolved")
            out.append({"action": action, "note": note})
    if work_orders.may(role, "assign", card["source"]):
        out.append({"action": "assign", "note": False})
    return out


@router.get("/work-orders")
def board(request: Request, conn: Db) -> Response:
    """Work orders: a board by state, overdue first, deadline countdowns, every step."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site = ctx.site["id"]
    columns = data.board(conn, site)
    for cards in columns.values():
        for card in cards:
            card["actions"] = actions_for(ctx.user.role, card)
            card["left"] = (card["deadline"] - ctx.now).total_seconds()
    return ctx.render("console/work_orders.html", "work_orders", columns=columns,
                      closed=data.closed_today(conn, site, since=ctx.now - timedelta(days=1)),
                      duration=lambda s: i18n.format_duration(abs(s), ctx.language),
                      stamp=data.stamp(conn, site))


GAP_HANDLERS = frozenset({"admin", "supervisor"})
MAX_GAPS = 200  # one page of open gaps; the rest are reached with ?offset=


@router.get("/patrol")
def patrol(request: Request, conn: Db, offset: int = 0) -> Response:
    """Patrol now: runs under way, the next run of each schedule, open gaps (a guard sees
    only their own), acknowledged many at once by a supervisor."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site = ctx.site["id"]
    picture = queries.patrol_status(conn, site, guard=own_guard(ctx.user), now=ctx.now,
                                   limit=MAX_GAPS, offset=max(offset, 0))
    return ctx.render("console/patrol.html", "patrol", picture=picture,
                      can_ack_gaps=ctx.user.role in GAP_HANDLERS, offset=max(offset, 0),
                      page_size=MAX_GAPS, stamp=data.stamp(conn, site))


@router.post("/patrol/acknowledge")
def acknowledge_gaps(request: Request, conn: Db,
                     csrf: Annotated[str | None, Depends(sessions.presented_csrf)],
                     gap: Annotated[list[int] | None, Form(max_length=MAX_GAPS)] = None,
                     note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """Acknowledge the ticked gaps with one note, in one transaction; back to Patrol."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    _ = i18n.gettext_for(ctx.language).gettext
    if not sessions.csrf_matches(ctx.session.csrf_token, csrf):
        return ctx.render("error.html", "patrol", status=403, message=_(
            "The form had expired. Please go back, reload and try again."))
    if ctx.user.role not in GAP_HANDLERS:
        return ctx.render("error.html", "patrol", status=403,
                          message=_("Only a supervisor may acknowledge gaps."))
    for gap_id in gap or []:
        # scoped to the site shown: a gap of another site is NotFound (the whole form fails)
        queries.acknowledge_gap(conn, gap_id, scope=ctx.site["id"], actor=ctx.user.actor,
                                note=note.strip() or None, now=ctx.now)
    return RedirectResponse("/patrol?site=" + quote(ctx.site["id"], safe=""),
                            status_code=303)


REPORT_READERS = frozenset({"admin", "supervisor", "engineer", "frontdesk", "viewer"})


def shown(name: str, value: float | None, language: str) -> str:
    """A KPI's value as people read it: a percentage, a span of time or a count."""
    kind = weekly.kind_of(name)
    if kind == "ratio":
        return i18n.format_percent(value, language)
    if kind == "duration":
        return i18n.format_duration(value, language)
    return i18n.format_number(value, language)


@router.get("/reports")
def kpis_and_reports(request: Request, conn: Db, week: str = "this") -> Response:
    """KPIs & reports: this (or last) week's KPIs against their targets and the week before;
    the stored weekly reports with their PDFs."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    if ctx.user.role not in REPORT_READERS:
        message = i18n.gettext_for(ctx.language).gettext("Reports are not for this role.")
        return ctx.render("error.html", "reports", status=403, message=message)
    site, tz = ctx.site["id"], ctx.site["timezone"]
    today = ctx.now.astimezone(ZoneInfo(tz)).date()
    period = periods.Week.of(today).shift(-1 if week == "last" else 0)
    end = min(period.next_monday, today + timedelta(days=1))
    values = kpis.compare(conn, site, period.monday, end, now=ctx.now)
    rows = [{"name": name, "label": weekly.kpi_label(name, ctx.language),
             "value": shown(name, k.value, ctx.language),
             "target": shown(name, k.target, ctx.language) if k.target is not None else "—",
             "previous": shown(name, k.previous, ctx.language),
             "met": weekly.met(name, k.value, k.target)}
            for name, k in values.items()]
    stored, total = store.list_reports(conn, site=site, scope=site, limit=20, offset=0)
    return ctx.render("console/reports.html", "reports", rows=rows, week=str(period),
                      which="last" if week == "last" else "this", first=period.monday,
                      last=end - timedelta(days=1), stored=stored, stored_total=total,
                      day=lambda d: i18n.format_date(d, ctx.language),
                      stamp=data.stamp(conn, site))


@router.get("/inspections")
def inspections(request: Request, conn: Db) -> Response:
    """Inspections: equipment rounds due (next two days) and done (last seven), findings."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    site, guard = ctx.site["id"], own_guard(ctx.user)
    runs = data.rounds(conn, site, guard=guard, start=ctx.now - RECENT,
                       end=ctx.now + timedelta(days=2))
    due = [r for r in reversed(runs) if not r["final"] and r["status"] in (
        "scheduled", "in_progress")]
    done = [r for r in runs if r not in due]
    return ctx.render("console/inspections.html", "inspections", due=due, done=done,
                      findings=data.findings(conn, site, guard=guard, since=ctx.now - RECENT),
                      stamp=data.stamp(conn, site))


SIGNERS = frozenset({"admin", "supervisor", "engineer"})
SHEETS = 10


@router.get("/handover")
def handover_sheets(request: Request, conn: Db) -> Response:
    """Handover: the latest shift sheets, what each lists, their signatures; sign a side."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return ctx
    if ctx.user.role not in REPORT_READERS:
        message = i18n.gettext_for(ctx.language).gettext("Reports are not for this role.")
        return ctx.render("error.html", "handover", status=403, message=message)
    site = ctx.site["id"]
    sheets, total = handover.list_sheets(conn, site=site, scope=site, limit=SHEETS, offset=0)
    for sheet in sheets:
        sheet["state"] = handover.state_of(sheet, ctx.now)
        sheet["counts"] = {key: len(value) for key, value in sheet["content"].items()
                           if isinstance(value, list)}
    return ctx.render("console/handover.html", "handover", sheets=sheets, total=total,
                      can_sign=ctx.user.role in SIGNERS, stamp=data.stamp(conn, site))


@router.get("/console/live.json")
def live(request: Request, conn: Db) -> Response:
    """What the live pages poll: a fingerprint that changes when anything they show does."""
    ctx = context(request, conn)
    if isinstance(ctx, Response):
        return JSONResponse({"detail": "log in again"}, status_code=401)
    return JSONResponse({"stamp": data.stamp(conn, ctx.site["id"])},
                        headers={"Cache-Control": "no-store"})


@router.post("/console/language")
def choose_language(request: Request, conn: Db,
                    csrf: Annotated[str | None, Depends(sessions.presented_csrf)],
                    lang: Annotated[str, Form(max_length=16)] = "",
                    next: Annotated[str, Form(max_length=2048)] = "/") -> Response:  # noqa: A002
    """Keep the user's language (the switch in the bar) and go back to the page."""
    cookie = request.cookies.get(sessions.COOKIE)
    session = None if cookie is None else sessions.lookup(
        conn, cookie, now=request.app.state.clock(),
        idle=request.app.state.settings.session_idle_timeout)
    if session is None:
        return _login(request)
    language = pages.language_for(request, lang, session.principal.language)
    if not sessions.csrf_matches(session.csrf_token, csrf) or lang not in i18n.LANGUAGES:
        message = i18n.gettext_for(language).gettext(
            "The form had expired. Please go back, reload and try again.")
        return pages.page("error.html", language, status=403, message=message)
    conn.execute("UPDATE users SET language = %s WHERE id = %s",
                 (lang, session.principal.user_id))
    target = next if next.startswith("/") and not next.startswith(("//", "/\\")) else "/"
    return RedirectResponse(target, status_code=303)
