"""The weekly inspection report of a site: gathered from the records, rendered as HTML and PDF.

Every KPI number comes from `reports.kpis.compute` (this week, last week and the weeks of the
trend); the lists and counts beside them (missed checkpoints, work orders by source, the
worst devices, ...) are read here. Residents' names are masked: a report is an export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from caretaker.errors import NotFound
from caretaker.privacy import mask_name
from reports import charts
from reports import kpis as kpi_lib
from reports._sql import one, rows
from reports.i18n import gettext_for
from reports.kpis import NAMES, Kpi
from reports.periods import Week
from reports.render import html_to_pdf, render_html
from rules.fire_pump_store import site_spec

TREND_WEEKS = 6  # this week and the five before it
LIST_LIMIT = 50  # rows of a list shown in full; the rest are counted
# How each KPI's value reads: a ratio (0..1, shown as a percentage), a duration in seconds,
# or a count. Every other KPI is a ratio.
DURATIONS = frozenset({"mtta_seconds", "mttr_seconds", "mtbf_seconds"})
COUNTS = frozenset({"backlog", "repeat_faults"})
RATIOS = tuple(n for n in NAMES if n not in DURATIONS | COUNTS)
LOWER_IS_BETTER = frozenset({"mtta_seconds", "mttr_seconds", "backlog", "repeat_faults"})

Progress = Callable[[str], None]
KpiSource = Callable[..., dict[str, Kpi]]  # kpis.compute's signature


def met(name: str, value: float | None, target: float | None) -> bool | None:
    """Whether a KPI meets its target (None when it has no target or no value)."""
    if value is None or target is None:
        return None
    return value <= target if name in LOWER_IS_BETTER else value >= target


def kind_of(name: str) -> str:
    """"ratio", "duration" or "count": how a KPI's value is shown."""
    return "duration" if name in DURATIONS else "count" if name in COUNTS else "ratio"


@dataclass
class Site:
    id: str
    name: str
    timezone: str


@dataclass
class WeeklyData:
    """Everything the weekly report shows, gathered for one site and week."""

    site: Site
    week: Week
    start: datetime
    end: datetime
    generated_at: datetime
    kpis: dict[str, Kpi]
    previous: dict[str, Kpi]
    trend: list[tuple[Week, dict[str, Kpi]]]  # oldest first, this week last
    work_orders_by_source: list[dict[str, Any]] = field(default_factory=list)
    work_orders_by_category: list[dict[str, Any]] = field(default_factory=list)
    patrol_routes: list[dict[str, Any]] = field(default_factory=list)
    patrol_guards: list[dict[str, Any]] = field(default_factory=list)
    missed_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    missed_total: int = 0
    inspections: list[dict[str, Any]] = field(default_factory=list)
    overdue_inspections: list[dict[str, Any]] = field(default_factory=list)
    complaints: dict[str, Any] = field(default_factory=dict)
    complaint_list: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: dict[str, Any] = field(default_factory=dict)
    worst_devices: list[dict[str, Any]] = field(default_factory=list)
    repeat_faults: list[dict[str, Any]] = field(default_factory=list)
    device_names: dict[str, str] = field(default_factory=dict)
    fire_pump_starts: list[dict[str, Any]] = field(default_factory=list)
    fire_pump_tests: list[dict[str, Any]] = field(default_factory=list)

    def kpi_table(self) -> dict[str, dict[str, Any]]:
        """The KPIs as the API answers them: value, numerator, denominator, target, previous."""
        out = {}
        for name in NAMES:
            k = self.kpis.get(name)
            if k is None:
                continue
            prev = self.previous.get(name)
            out[name] = {"value": k.value, "numerator": k.numerator,
                         "denominator": k.denominator, "target": k.target,
                         "previous": prev.value if prev else None,
                         "met": met(name, k.value, k.target)}
        return out


def site_of(conn: psycopg.Connection[Any], site_id: str) -> Site:
    """A configured site's name and time zone; NotFound when there is none."""
    row = one(conn, "SELECT id, name, timezone FROM sites WHERE id = %s", (site_id,))
    if row is None:
        raise NotFound(f"site {site_id!r} not found")
    return Site(row["id"], row["name"], row["timezone"])


def gather(conn: psycopg.Connection[Any], site_id: str, week: Week, *, now: datetime,
           progress: Progress | None = None, kpi_source: KpiSource = kpi_lib.compute
           ) -> WeeklyData:
    """Read everything the report of one site and week shows."""
    step = progress or (lambda _: None)
    site = site_of(conn, site_id)
    start, end = week.bounds(site.timezone)
    trend = []
    for back in range(TREND_WEEKS - 1, -1, -1):
        w = week.shift(-back)
        step(f"KPIs {w}")
        trend.append((w, kpi_source(conn, site_id, w.monday, w.next_monday, now=now)))
    data = WeeklyData(site=site, week=week, start=start, end=end, generated_at=now,
                      kpis=trend[-1][1], previous=trend[-2][1], trend=trend)
    p = {"site": site_id, "start": start, "end": end, "limit": LIST_LIMIT}
    step("work orders")
    data.work_orders_by_source = rows(conn, WORK_ORDERS_BY.replace("{by}", "source"), p)
    data.work_orders_by_category = rows(conn, WORK_ORDERS_BY.replace("{by}", "category"), p)
    step("patrols")
    data.patrol_routes = rows(conn, PATROL_BY.replace("{by}", "route_id"), p)
    data.patrol_guards = rows(conn, PATROL_BY.replace("{by}", "guard_id"), p)
    data.missed_checkpoints = rows(conn, MISSED_CHECKPOINTS, p)
    total = one(conn, MISSED_TOTAL, p)
    data.missed_total = int(total["n"]) if total else 0
    step("inspections")
    data.inspections = rows(conn, INSPECTIONS, p)
    data.overdue_inspections = rows(conn, OVERDUE_INSPECTIONS, p)
    step("complaints and follow-ups")
    data.complaints = one(conn, COMPLAINTS, p) or {}
    data.complaint_list = [
        {**c, "complainant_name": mask_name(c["complainant_name"])}
        for c in rows(conn, COMPLAINT_LIST, p)]
    data.follow_ups = one(conn, FOLLOW_UPS, p) or {}
    step("devices")
    data.worst_devices = rows(conn, WORST_DEVICES, p)
    data.device_names = {r["id"]: r["name"] for r in rows(
        conn, "SELECT id, name FROM devices WHERE site_id = %(site)s", p)}
    data.repeat_faults = rows(conn, REPEAT_FAULTS, p)
    step("fire-pump tests")
    types = site_spec(conn, site_id).fire_pump_types
    data.fire_pump_starts = rows(conn, FIRE_PUMP_STARTS, {**p, "fire_pump_types": types})
    zone = ZoneInfo(site.timezone)
    data.fire_pump_tests = [
        {**t, "first_day": t["period_start"].astimezone(zone).date(),
         "last_day": (t["period_end"].astimezone(zone) - timedelta(days=1)).date()}
        for t in rows(conn, FIRE_PUMP_TESTS, p)]
    return data


# Work orders per source or category: opened, resolved and closed in the week, and overdue
# (still open past their resolve deadline) at its end.
WORK_ORDERS_BY = """
SELECT {by} AS key,
       count(*) FILTER (WHERE opened_at >= %(start)s) AS opened,
       count(*) FILTER (WHERE resolved_at >= %(start)s AND resolved_at < %(end)s) AS resolved,
       count(*) FILTER (WHERE closed_at >= %(start)s AND closed_at < %(end)s) AS closed,
       count(*) FILTER (WHERE resolve_by < %(end)s AND coalesce(
           least(resolved_at, closed_at, cancelled_at), 'infinity') > %(end)s) AS overdue
  FROM work_orders
 WHERE site_id = %(site)s AND opened_at < %(end)s
   AND coalesce(least(resolved_at, closed_at, cancelled_at), 'infinity') >= %(start)s
 GROUP BY {by} ORDER BY opened DESC, {by}"""

# Patrol runs planned in the week (equipment rounds apart), per route or guard.
PATROL_BY = """
SELECT r.{by} AS key, coalesce(rt.name, g.name) AS name,
       count(DISTINCT r.id) AS runs,
       count(DISTINCT r.id) FILTER (WHERE r.status = 'complete') AS complete,
       count(DISTINCT r.id) FILTER (WHERE r.status = 'incomplete') AS incomplete,
       count(DISTINCT r.id) FILTER (WHERE r.status = 'missed') AS missed_runs,
       count(v.*) AS visits,
       count(v.*) FILTER (WHERE v.timing IN ('on_time', 'early')) AS visits_on_time,
       count(v.*) FILTER (WHERE v.timing = 'late') AS visits_late,
       count(v.*) FILTER (WHERE v.timing = 'missed') AS visits_missed
  FROM patrol_runs r
  JOIN patrol_visits v ON v.run_id = r.id
  LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id AND 'route_id' = '{by}'
  LEFT JOIN guards g ON g.site_id = r.site_id AND g.id = r.guard_id AND 'guard_id' = '{by}'
 WHERE r.site_id = %(site)s AND r.planned_start >= %(start)s AND r.planned_start < %(end)s
   AND NOT v.equipment
 GROUP BY r.{by}, rt.name, g.name ORDER BY r.{by} NULLS LAST"""

_MISSED = """
  FROM patrol_visits v JOIN patrol_runs r ON r.id = v.run_id
 WHERE v.site_id = %(site)s AND v.due_at >= %(start)s AND v.due_at < %(end)s
   AND v.timing = 'missed'"""

MISSED_CHECKPOINTS = """
SELECT v.due_at, v.checkpoint_id, c.name AS checkpoint, v.equipment, r.route_id,
       rt.name AS route, r.guard_id, g.name AS guard""" + _MISSED.replace(
    "JOIN patrol_runs r ON r.id = v.run_id", """JOIN patrol_runs r ON r.id = v.run_id
  LEFT JOIN checkpoints c ON c.site_id = v.site_id AND c.id = v.checkpoint_id
  LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id
  LEFT JOIN guards g ON g.site_id = r.site_id AND g.id = r.guard_id""") + """
 ORDER BY v.due_at, v.checkpoint_id LIMIT %(limit)s"""

MISSED_TOTAL = "SELECT count(*) AS n" + _MISSED

# Equipment inspection rounds (runs with equipment checkpoints) due in the week, per route.
INSPECTIONS = """
SELECT r.route_id AS key, rt.name,
       count(*) AS due,
       count(*) FILTER (WHERE r.status = 'complete') AS done,
       count(*) FILTER (WHERE r.status IN ('incomplete', 'missed')) AS not_done,
       count(*) FILTER (WHERE r.status IN ('scheduled', 'in_progress')) AS pending
  FROM patrol_runs r
  LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id
 WHERE r.site_id = %(site)s AND r.planned_start >= %(start)s AND r.planned_start < %(end)s
   AND EXISTS (SELECT 1 FROM patrol_visits v WHERE v.run_id = r.id AND v.equipment)
 GROUP BY r.route_id, rt.name ORDER BY r.route_id"""

OVERDUE_INSPECTIONS = """
SELECT gp.window_end, gp.checkpoint_id, c.name AS checkpoint, gp.route_id, rt.name AS route,
       gp.status, gp.resolution
  FROM inspection_gaps gp
  LEFT JOIN checkpoints c ON c.site_id = gp.site_id AND c.id = gp.checkpoint_id
  LEFT JOIN routes rt ON rt.site_id = gp.site_id AND rt.id = gp.route_id
 WHERE gp.site_id = %(site)s AND gp.kind = 'overdue_inspection'
   AND gp.window_end >= %(start)s AND gp.window_end < %(end)s
 ORDER BY gp.window_end LIMIT %(limit)s"""

COMPLAINTS = """
SELECT count(*) FILTER (WHERE opened_at >= %(start)s) AS opened,
       count(*) FILTER (WHERE opened_at >= %(start)s AND grade = '严重') AS serious,
       count(*) FILTER (WHERE answered_at >= %(start)s AND answered_at < %(end)s) AS answered,
       count(*) FILTER (WHERE answer_by >= %(start)s AND answer_by < %(end)s
                        AND (answered_at IS NULL OR answered_at > answer_by)) AS answered_late,
       count(*) FILTER (WHERE closed_at >= %(start)s AND closed_at < %(end)s
                        AND resolution = 'handled') AS handled,
       count(*) FILTER (WHERE closed_at >= %(start)s AND closed_at < %(end)s
                        AND resolution = 'invalid') AS invalid,
       count(*) FILTER (WHERE closed_at IS NULL OR closed_at >= %(end)s) AS open_at_end
  FROM complaints
 WHERE site_id = %(site)s AND opened_at < %(end)s
   AND (closed_at IS NULL OR closed_at >= %(start)s)"""

COMPLAINT_LIST = """
SELECT number, grade, category, state, complainant_name, complainant_unit, opened_at,
       answer_by, answered_at, closed_at, resolution
  FROM complaints
 WHERE site_id = %(site)s AND opened_at < %(end)s
   AND (closed_at IS NULL OR closed_at >= %(start)s)
 ORDER BY opened_at LIMIT %(limit)s"""

# Follow-up visits made in the week, and the work orders resolved in it still waiting for one.
FOLLOW_UPS = """
SELECT (SELECT count(*) FROM follow_ups f WHERE f.site_id = %(site)s
           AND f.at >= %(start)s AND f.at < %(end)s) AS visits,
       (SELECT count(*) FROM follow_ups f WHERE f.site_id = %(site)s
           AND f.at >= %(start)s AND f.at < %(end)s AND f.outcome = 'reached') AS reached,
       (SELECT count(*) FROM follow_ups f WHERE f.site_id = %(site)s
           AND f.at >= %(start)s AND f.at < %(end)s AND f.outcome = 'unreachable')
           AS unreachable,
       (SELECT count(*) FROM follow_ups f WHERE f.site_id = %(site)s
           AND f.at >= %(start)s AND f.at < %(end)s AND f.outcome = 'refused') AS refused,
       (SELECT count(*) FROM work_orders w WHERE w.site_id = %(site)s
           AND w.resolved_at >= %(start)s AND w.resolved_at < %(end)s) AS due,
       (SELECT count(*) FROM work_orders w WHERE w.site_id = %(site)s
           AND w.resolved_at >= %(start)s AND w.resolved_at < %(end)s
           AND NOT EXISTS (SELECT 1 FROM follow_ups f WHERE f.work_order_id = w.id
                           AND f.outcome = 'reached' AND f.at < %(end)s)) AS outstanding"""

# Devices with the most trouble in the week: alarms raised, work orders opened, times offline.
WORST_DEVICES = """
SELECT * FROM (
  SELECT d.id, d.name,
         (SELECT count(*) FROM alarms a WHERE a.site_id = d.site_id AND a.device_id = d.id
             AND a.raised_at >= %(start)s AND a.raised_at < %(end)s) AS alarms,
         (SELECT count(*) FROM work_orders w WHERE w.site_id = d.site_id
             AND w.device_id = d.id AND w.opened_at >= %(start)s AND w.opened_at < %(end)s)
             AS work_orders,
         (SELECT count(*) FROM device_status s WHERE s.site_id = d.site_id
             AND s.device_id = d.id AND s.status = 'offline'
             AND s.time >= %(start)s AND s.time < %(end)s) AS offline
    FROM devices d WHERE d.site_id = %(site)s AND d.status = 'active') t
 WHERE alarms + work_orders + offline > 0
 ORDER BY work_orders + alarms + offline DESC, id LIMIT 10"""

REPEAT_FAULTS = """
SELECT w.id, w.device_id, d.name AS device, w.title, w.repeat_count, w.repeat_of, w.opened_at
  FROM work_orders w
  LEFT JOIN devices d ON d.site_id = w.site_id AND d.id = w.device_id
 WHERE w.site_id = %(site)s AND w.opened_at < %(end)s
   AND (w.repeat_of IS NOT NULL OR w.repeat_count > 0)
   AND (w.opened_at >= %(start)s OR EXISTS (
        SELECT 1 FROM work_order_refs f WHERE f.work_order_id = w.id
           AND f.at >= %(start)s AND f.at < %(end)s))
 ORDER BY w.repeat_count DESC, w.opened_at LIMIT %(limit)s"""


# The fire-pump test log (rules/fire_pump_store.py): the fire pumps' starts in the week, and
# the verdicts on the test periods that ended in it (the week's automatic start test, the
# jockey pump's days, a month's manual start), gaps first.
FIRE_PUMP_STARTS = """
SELECT r.device_id, d.name AS device, r.started_at, r.stopped_at,
       extract(epoch FROM r.stopped_at - r.started_at)::float8 AS duration_s,
       r.pressure_reached, r.mode
  FROM fire_pump_runs r
  JOIN devices d ON d.site_id = r.site_id AND d.id = r.device_id
 WHERE r.site_id = %(site)s AND r.started_at >= %(start)s AND r.started_at < %(end)s
   AND d.type_id = ANY(%(fire_pump_types)s)
 ORDER BY r.started_at LIMIT %(limit)s"""

FIRE_PUMP_TESTS = """
SELECT t.device_id, d.name AS device, t.test, t.period_start, t.period_end, t.status,
       t.reason, t.details, t.work_order_id
  FROM fire_pump_tests t
  JOIN devices d ON d.site_id = t.site_id AND d.id = t.device_id
 WHERE t.site_id = %(site)s AND t.period_end > %(start)s AND t.period_end <= %(end)s
 ORDER BY t.status = 'done', t.test, t.device_id, t.period_start LIMIT %(limit)s"""


def breakdown_rows(breakdown: Any, prefix: str = "") -> list[dict[str, Any]]:
    """A KPI's breakdown (nested by category, route, guard, bucket ...) as flat labelled rows.

    A mapping with a `value` (or a Kpi) is one row; other mappings are walked into, their
    keys joined by " / "; a bare number is a row of its own.
    """
    out: list[dict[str, Any]] = []
    if isinstance(breakdown, Kpi):
        return [{"label": prefix, "value": breakdown.value, "numerator": breakdown.numerator,
                 "denominator": breakdown.denominator, "bare": False}]
    if isinstance(breakdown, dict):
        if "value" in breakdown and prefix:
            return [{"label": prefix, "value": breakdown.get("value"),
                     "numerator": breakdown.get("numerator"),
                     "denominator": breakdown.get("denominator"), "bare": False}]
        for key, item in breakdown.items():
            out += breakdown_rows(item, f"{prefix} / {key}" if prefix else str(key))
        return out
    if isinstance(breakdown, int | float) and not isinstance(breakdown, bool):
        return [{"label": prefix, "value": breakdown, "numerator": None, "denominator": None,
                 "bare": True}]
    return out


def _charts(data: WeeklyData, language: str) -> dict[str, Any]:
    """The report's charts, labelled in its language."""
    _ = gettext_for(language).gettext
    out: dict[str, Any] = {}
    trend_names = [n for n in RATIOS if any(k.get(n) and k[n].value is not None
                                            for _w, k in data.trend)]
    if trend_names:
        out["trend"] = charts.trend_lines(
            [f"W{w.week:02d}" for w, _k in data.trend],
            [(kpi_label(n, language), [k[n].value if n in k else None for _w, k in data.trend])
             for n in trend_names])
    patrol = data.kpis.get("patrol_completion")
    names = {r["key"]: r["name"] for r in data.patrol_routes + data.patrol_guards if r["name"]}
    for group, title in (("by_route", _("Patrol completion per route")),
                         ("by_guard", _("Patrol completion per guard"))):
        parts = (patrol.breakdown.get(group) if patrol else None) or {}
        shown = [(names.get(key, key), v["value"]) for key, v in parts.items()
                 if isinstance(v, dict) and v.get("value") is not None]
        if shown:
            out[f"patrol_{group}"] = charts.bars([k for k, _v in shown], [v for _k, v in shown],
                                                 ratio=True, horizontal=True, title=title)
    if data.work_orders_by_source or data.work_orders_by_category:
        out["sources"] = charts.grouped_bars(
            [source_label(r["key"], language) for r in data.work_orders_by_source],
            [(_("Opened"), [r["opened"] for r in data.work_orders_by_source]),
             (_("Closed"), [r["closed"] for r in data.work_orders_by_source]),
             (_("Overdue"), [r["overdue"] for r in data.work_orders_by_source])],
            title=_("Work orders by source"))
        out["categories"] = charts.grouped_bars(
            [str(r["key"]) for r in data.work_orders_by_category],
            [(_("Opened"), [r["opened"] for r in data.work_orders_by_category]),
             (_("Closed"), [r["closed"] for r in data.work_orders_by_category])],
            title=_("Work orders by category"))
    backlog = data.kpis.get("backlog")
    ages = (backlog.breakdown.get("ages") if backlog else None) or {}
    if any(ages.values()):
        labels = render_module(language)
        out["backlog"] = charts.bars([str(labels.age_name(k)).strip() for k in ages],
                                     list(ages.values()), colour=1,
                                     title=_("Open work orders by age"))
    worst = available(data)
    if worst:
        out["devices"] = charts.bars([w["name"] for w in worst],
                                     [w["availability"] for w in worst], ratio=True,
                                     horizontal=True, colour=3, title=_("Device availability"))
    return out


def available(data: WeeklyData) -> list[dict[str, Any]]:
    """The devices the equipment_intact KPI names as least available, with their names."""
    intact = data.kpis.get("equipment_intact")
    worst = (intact.breakdown.get("worst") if intact else None) or []
    names = data.device_names
    return [{**w, "name": names.get(w["device"], w["device"])} for w in worst
            if isinstance(w, dict) and "device" in w]


def kpi_label(name: str, language: str) -> str:
    """A KPI's name in a language (the catalogue's `kpi_name` macro)."""
    macros = render_module(language)
    return str(macros.kpi_name(name)).strip()


def source_label(source: str, language: str) -> str:
    """A work-order source's name in a language."""
    return str(render_module(language).source_name(source)).strip()


def render_module(language: str) -> Any:
    """The label macros of the templates (one place names KPIs, sources, states)."""
    from reports.render import environment

    return environment(language).get_template("labels.html").module


def to_html(data: WeeklyData, language: str) -> str:
    """The report as a self-contained HTML page (styles and charts inline)."""
    rows_by_name = {n: breakdown_rows(k.breakdown) for n, k in data.kpis.items()}
    return render_html("weekly.html", language, data=data, kpis=data.kpi_table(),
                       names=[n for n in NAMES if n in data.kpis],
                       kind_of=kind_of, breakdowns=rows_by_name,
                       charts=_charts(data, language), tz=data.site.timezone,
                       available=available(data),
                       week_label=str(data.week))


def render(data: WeeklyData, language: str) -> tuple[str, bytes]:
    """The report as HTML and as PDF (the PDF laid out from the same HTML)."""
    html = to_html(data, language)
    return html, html_to_pdf(html)
