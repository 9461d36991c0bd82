"""The staff console's pages (Plant, Device, Alarms, Work orders, Patrol and its runs,
Inspections, KPIs & reports, Handover, the wall display), the forms they post, and the small
JSON the live pages poll. Every page takes one dependency, `Page` (api/console/context.py)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api import pages, sessions
from api.console import data, spark
from api.console.context import Leave, Page, PageRoute, page_context, session_of, to_login
from api.deps import Db
from api.patrol import own_guard
from caretaker.privacy import masked, may_see_personal
from reports import handover, i18n, kpis, periods, store, weekly
from rules.patrol import queries
from tickets import complaints, follow_ups, work_orders

router = APIRouter(include_in_schema=False, route_class=PageRoute)
RECENT = timedelta(days=7)


@router.get("/")
def plant(ctx: Page) -> Response:
    """Plant: devices by zone with state, last reading, a day's sparkline; alarms first."""
    devices = data.plant(ctx.conn, ctx.site_id, now=ctx.now)
    for dev in devices:
        dev["points"] = spark.points(dev["spark"])
    return ctx.render("console/plant.html", "plant", devices=devices,
                      alarms=data.active_alarms(ctx.conn, ctx.site_id, limit=20))


@router.get("/devices/{device_id}")
def device(ctx: Page, device_id: str, range: str = "24h") -> Response:  # noqa: A002
    """Device: each metric over a chosen range with thresholds and alarms; recent tickets."""
    conn, site = ctx.conn, ctx.site_id
    dev = data.device(conn, site, device_id[:64])
    if dev is None:
        raise ctx.refuse("plant", ctx.gettext("No such device."), status=404)
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
                  "tz": ctx.site["timezone"], "lang": ctx.language, "charts": charts}
    return ctx.render("console/device.html", "plant", device=dev, charts=charts,
                      chart_data=chart_data, alarms=alarms, ranges=list(data.RANGES),
                      range=range if range in data.RANGES else "24h",
                      tickets=data.device_tickets(conn, site, dev["id"]))


@router.get("/alarms")
def alarms(ctx: Page) -> Response:
    """Alarms: active (worst first) with acknowledge and clear; those cleared this week."""
    return ctx.render("console/alarms.html", "alarms",
                      active_alarms=data.active_alarms(ctx.conn, ctx.site_id),
                      recent=data.recent_alarms(ctx.conn, ctx.site_id, since=ctx.now - RECENT))


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


def complaint_actions(role: str, state: str) -> list[str]:
    """The steps a role may take on a complaint in this state (the lifecycle's own table);
    closing as handled follows an answer, closing as not valid is its own step."""
    out = [a for a, t in complaints.TRANSITIONS.items()
           if a != "close" and state in t.frm and complaints.may(role, a)]
    if state in complaints.CLOSE_FROM["handled"] and complaints.may(role, "close"):
        out.append("close")
    if state in complaints.CLOSE_FROM["invalid"] and complaints.may(role, "close_invalid"):
        out.append("close_invalid")
    return out


FOLLOW_UP_VISITORS = frozenset({"admin", "frontdesk", "supervisor", "engineer"})
QUEUE_SIZE = 50


@router.get("/work-orders")
def board(ctx: Page) -> Response:
    """Work orders: a board by state, overdue first, deadline countdowns, every step; new
    manual tickets and complaints; live complaints; the follow-up queue with its attempts."""
    conn, site, role = ctx.conn, ctx.site_id, ctx.user.role
    columns = data.board(conn, site)
    for cards in columns.values():
        for card in cards:
            card["actions"] = actions_for(role, card)
    live = data.complaints_live(conn, site)
    for c in live:
        c["actions"] = complaint_actions(role, c["state"])
    queue, queued = follow_ups.queue(conn, scope=site, now=ctx.now, limit=QUEUE_SIZE, offset=0)
    if not may_see_personal(role):
        queue = [masked(i, names=("contact_name",), phones=("contact_phone",)) for i in queue]
    return ctx.render(
        "console/work_orders.html", "work_orders", columns=columns,
        closed=data.closed_today(conn, site, since=ctx.now - timedelta(days=1)),
        complaints=live, queue=queue, queued=queued, places=data.places(conn, site),
        can_create=work_orders.may(role, "create"),
        can_register=complaints.may(role, "create"),
        can_visit=role in FOLLOW_UP_VISITORS, ticket_form=TICKET_FORM,
        complaint_form=COMPLAINT_FORM, visit_form=VISIT_FORM,
        left=lambda at: (at - ctx.now).total_seconds())


# The choices the forms offer: the domain's own lists (the API validates the same values).
TICKET_FORM = {"categories": work_orders.CATEGORIES, "urgencies": work_orders.URGENCIES,
               "channels": work_orders.MANUAL_CHANNELS}
COMPLAINT_FORM = {"grades": complaints.GRADES, "categories": complaints.CATEGORIES,
                  "channels": complaints.CHANNELS}
VISIT_FORM = {"outcomes": follow_ups.OUTCOMES, "channels": follow_ups.CHANNELS}


GAP_HANDLERS = frozenset({"admin", "supervisor"})
MAX_GAPS = 200  # one page of open gaps; the rest are reached with ?offset=


@router.get("/patrol")
def patrol(ctx: Page, offset: int = 0) -> Response:
    """Patrol now: runs under way, the next run of each schedule, open gaps (a guard sees
    only their own), acknowledged many at once by a supervisor."""
    picture = queries.patrol_status(ctx.conn, ctx.site_id, guard=own_guard(ctx.user),
                                   now=ctx.now, limit=MAX_GAPS, offset=max(offset, 0))
    return ctx.render("console/patrol.html", "patrol", picture=picture,
                      can_ack_gaps=ctx.user.role in GAP_HANDLERS, offset=max(offset, 0),
                      page_size=MAX_GAPS)


@router.get("/patrol/runs")
def patrol_runs(ctx: Page, day: str = "", guard: str = "") -> Response:
    """Runs by guard and day: each run's visits with their classification (on time, early,
    late, out of order, missed, pending) and the scans that counted for none (a checkpoint
    on no planned run, a repeat, an unknown tag). A guard sees only their own."""
    own = own_guard(ctx.user)
    today = ctx.now.astimezone(ZoneInfo(ctx.site["timezone"])).date()
    try:
        shown_day = date.fromisoformat(day) if day else today
    except ValueError:
        raise ctx.refuse("patrol", ctx.gettext("That is not a date (YYYY-MM-DD)."),
                         status=422) from None
    chosen = guard[:64] or None
    runs = data.runs_of_day(ctx.conn, ctx.site_id, shown_day, guard=own, guard_id=chosen)
    strays = data.stray_scans(ctx.conn, ctx.site_id, shown_day, guard=own, guard_id=chosen)
    by_guard: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = run["guard_id"] or run["post"] or "—"
        by_guard.setdefault(key, {"name": run["guard_name"] or key, "runs": [], "strays": []})
        by_guard[key]["runs"].append(run)
    for scan in strays:
        by_guard.setdefault(scan["guard_id"], {"name": scan["guard_id"], "runs": [],
                                               "strays": []})["strays"].append(scan)
    return ctx.render("console/runs.html", "patrol", day=shown_day, today=today,
                      guards=data.guards(ctx.conn, ctx.site_id, guard=own), guard=chosen or "",
                      by_guard=by_guard, time=lambda at: i18n.format_time(
                          at, ctx.language, ctx.site["timezone"]) if at else "—",
                      long_day=i18n.format_date(shown_day, ctx.language),
                      previous=shown_day - timedelta(days=1),
                      following=shown_day + timedelta(days=1))


@router.post("/patrol/acknowledge")
def acknowledge_gaps(ctx: Page, csrf: Annotated[str | None, Depends(sessions.presented_csrf)],
                     gap: Annotated[list[int] | None, Form(max_length=MAX_GAPS)] = None,
                     note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """Acknowledge the ticked gaps with one note, in one transaction; back to Patrol."""
    if not sessions.csrf_matches(ctx.session.csrf_token, csrf):
        raise ctx.refuse("patrol", ctx.gettext(
            "The form had expired. Please go back, reload and try again."))
    if ctx.user.role not in GAP_HANDLERS:
        raise ctx.refuse("patrol", ctx.gettext("Only a supervisor may acknowledge gaps."))
    for gap_id in gap or []:
        # scoped to the site shown: a gap of another site is NotFound (the whole form fails)
        queries.acknowledge_gap(ctx.conn, gap_id, scope=ctx.site_id, actor=ctx.user.actor,
                                note=note.strip() or None, now=ctx.now)
    return RedirectResponse("/patrol?site=" + quote(ctx.site_id, safe=""), status_code=303)


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
def kpis_and_reports(ctx: Page, week: str = "this") -> Response:
    """KPIs & reports: this (or last) week's KPIs against their targets and the week before;
    the stored weekly reports with their PDFs."""
    if ctx.user.role not in REPORT_READERS:
        raise ctx.refuse("reports", ctx.gettext("Reports are not for this role."))
    site, tz, lang = ctx.site_id, ctx.site["timezone"], ctx.language
    today = ctx.now.astimezone(ZoneInfo(tz)).date()
    period = periods.Week.of(today).shift(-1 if week == "last" else 0)
    end = min(period.next_monday, today + timedelta(days=1))
    values = kpis.compare(ctx.conn, site, period.monday, end, now=ctx.now)
    rows = [{"name": name, "label": weekly.kpi_label(name, lang),
             "value": shown(name, k.value, lang),
             "target": shown(name, k.target, lang) if k.target is not None else "—",
             "previous": shown(name, k.previous, lang),
             "met": weekly.met(name, k.value, k.target)}
            for name, k in values.items()]
    stored, total = store.list_reports(ctx.conn, site=site, scope=site, limit=20, offset=0)
    return ctx.render("console/reports.html", "reports", rows=rows, week=str(period),
                      which="last" if week == "last" else "this", first=period.monday,
                      last=end - timedelta(days=1), stored=stored, stored_total=total,
                      day=lambda d: i18n.format_date(d, lang))


@router.get("/inspections")
def inspections(ctx: Page) -> Response:
    """Inspections: equipment rounds due (next two days) and done (last seven), findings."""
    site, guard = ctx.site_id, own_guard(ctx.user)
    runs = data.rounds(ctx.conn, site, guard=guard, start=ctx.now - RECENT,
                       end=ctx.now + timedelta(days=2))
    due = [r for r in reversed(runs) if not r["final"] and r["status"] in (
        "scheduled", "in_progress")]
    done = [r for r in runs if r not in due]
    return ctx.render("console/inspections.html", "inspections", due=due, done=done,
                      findings=data.findings(ctx.conn, site, guard=guard,
                                             since=ctx.now - RECENT))


SIGNERS = frozenset({"admin", "supervisor", "engineer"})
SHEETS = 10


@router.get("/handover")
def handover_sheets(ctx: Page) -> Response:
    """Handover: the latest shift sheets, what each lists, their signatures; sign a side."""
    if ctx.user.role not in REPORT_READERS:
        raise ctx.refuse("handover", ctx.gettext("Reports are not for this role."))
    sheets, total = handover.list_sheets(ctx.conn, site=ctx.site_id, scope=ctx.site_id,
                                         limit=SHEETS, offset=0)
    for sheet in sheets:
        sheet["state"] = handover.state_of(sheet, ctx.now)
        sheet["counts"] = {key: len(value) for key, value in sheet["content"].items()
                           if isinstance(value, list)}
    return ctx.render("console/handover.html", "handover", sheets=sheets, total=total,
                      can_sign=ctx.user.role in SIGNERS)


WALL_GAPS = 30


@router.get("/wall")
def wall(ctx: Page) -> Response:
    """The wall display for the engineering office: the plant by zone, active alarms,
    overdue work orders and open gaps in large type, no navigation; it refreshes itself
    and, for a viewer's session, keeps the session alive while it is shown."""
    conn, site = ctx.conn, ctx.site_id
    devices = data.plant(conn, site, now=ctx.now)
    zones: dict[str, list[dict[str, Any]]] = {}
    for dev in devices:
        zones.setdefault(dev["zone_name"] or "—", []).append(dev)
    picture = queries.patrol_status(conn, site, guard=own_guard(ctx.user), now=ctx.now,
                                   limit=WALL_GAPS)
    return ctx.render("console/wall.html", "wall", zones=dict(sorted(zones.items())),
                      devices=devices, alarms=data.active_alarms(conn, site, limit=20),
                      overdue=data.overdue_tickets(conn, site, now=ctx.now), picture=picture,
                      keeps_alive=ctx.user.role in KEPT_ALIVE,
                      clock=i18n.format_time(ctx.now, ctx.language, ctx.site["timezone"]))


# The wall display's own login: a read-only viewer, whose session its polling renews.
KEPT_ALIVE = frozenset({"viewer"})


@router.get("/console/live.json")
def live(request: Request, conn: Db, wall: bool = False) -> Response:
    """What the live pages poll: a fingerprint that changes when anything they show does.
    Polled by the wall display (`wall=1`) with a viewer's session, it renews that session."""
    try:
        ctx = page_context(request, conn)
    except Leave:
        return JSONResponse({"detail": "log in again"}, status_code=401)
    if wall and ctx.user.role in KEPT_ALIVE:
        sessions.renew(conn, request.cookies[sessions.COOKIE], now=ctx.now,
                       settings=request.app.state.settings)
    return JSONResponse({"stamp": data.stamp(conn, ctx.site_id)},
                        headers={"Cache-Control": "no-store"})


@router.post("/console/language")
def choose_language(request: Request, conn: Db,
                    csrf: Annotated[str | None, Depends(sessions.presented_csrf)],
                    lang: Annotated[str, Form(max_length=16)] = "",
                    next: Annotated[str, Form(max_length=2048)] = "/") -> Response:  # noqa: A002
    """Keep the user's language (the switch in the bar) and go back to the page."""
    session = session_of(request, conn)
    if session is None:
        return to_login(request)
    language = pages.language_for(request, lang, session.principal.language)
    if not sessions.csrf_matches(session.csrf_token, csrf) or lang not in i18n.LANGUAGES:
        message = i18n.gettext_for(language).gettext(
            "The form had expired. Please go back, reload and try again.")
        return pages.page("error.html", language, status=403, message=message)
    conn.execute("UPDATE users SET language = %s WHERE id = %s",
                 (lang, session.principal.user_id))
    target = next if next.startswith("/") and not next.startswith(("//", "/\\")) else "/"
    return RedirectResponse(target, status_code=303)
