"""The KPI library: each KPI of DESIGN.md's table is one function over a site and a period in
the site's time zone, used alike by the API, the reports, the console and the dashboards.

A period is [start, end) of dates in the site's time zone, midnight to midnight local (a day
across a daylight-saving change has 23 or 25 hours). Each KPI reads the records with one
parameterised query bounded by the site and the period; the arithmetic (ratios, age buckets,
time weighting) is in the pure functions below. The KPIs are read at `now`: a deadline after
it is not yet due, and "at the end of the period" means at min(end, now).

A KPI with nothing to count has `value` None, never 0 % or 100 % by accident. Ratios carry
`value = numerator / denominator`; means carry `value = numerator (sum) / denominator
(count)`; counts (backlog, repeat_faults) carry `value = numerator` and the population they
were counted in as `denominator`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from caretaker.errors import Invalid, NotFound
from reports.targets import COMPLAINTS, KpiTargets, load_targets

# The KPI names, as the API answers them (`GET /api/v1/kpis`), in the order reports show them.
NAMES = ("repair_timeliness", "response_timeliness", "mtta_seconds", "mttr_seconds",
         "followup_rate", "satisfaction", "complaint_handling", "equipment_intact",
         "patrol_completion", "inspection_completion", "backlog", "repeat_faults",
         "mtbf_seconds")

# 零修急修: the work-order categories that are repairs (整改 rectifications of hazards and 其他
# are tracked in the backlog, not in the repair timeliness the contract judges).
REPAIR_CATEGORIES = ("公区维修", "居家维修", "设备")
# Work orders that someone reported and can be visited back (回访); system-raised ones
# (alarm, inspection, patrol) have no resident to call.
FOLLOWUP_SOURCES = ("manual", "complaint")
FAULT_SOURCES = ("alarm", "inspection")  # a fault of a device: a sensor alarm or a finding
INTACT_SEVERITIES = ("critical", "major")  # an open ticket this bad makes a device not intact
SATISFIED = 4  # satisfaction 4 or 5 of 5 counts as satisfied (满意)
# Backlog age buckets: upper bounds in seconds; labels for < 1 d, 1–3 d, 3–7 d, > 7 d.
AGE_BOUNDS = (86400, 3 * 86400, 7 * 86400)
AGE_LABELS = ("lt_1d", "1d_3d", "3d_7d", "gt_7d")
MAX_DAYS = 366  # the longest period one call computes
WORST = 10  # devices listed as the worst in equipment_intact's breakdown
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)  # still open / still offline

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Kpi:
    """One KPI over one period: value = numerator / denominator (None when nothing to count)."""

    value: float | None
    numerator: float | None
    denominator: float | None
    target: float | None = None
    breakdown: dict[str, Any] = field(default_factory=dict)  # per category, route, guard, ...
    previous: float | None = None  # the value over the same-length period before
    p90: float | None = None  # means only: the 90th percentile

    def public(self) -> dict[str, Any]:
        """The KPI as the API answers it."""
        return {"value": self.value, "numerator": self.numerator,
                "denominator": self.denominator, "target": self.target,
                "previous": self.previous, "p90": self.p90, "breakdown": self.breakdown}


@dataclass(frozen=True)
class Period:
    """[start, end) as instants, read at `now`; `until` = min(end, now) ends what happened."""

    start: datetime
    end: datetime
    now: datetime

    @property
    def until(self) -> datetime:
        """The end of what can have happened: the period's end, or now if that is earlier."""
        return max(self.start, min(self.end, self.now))

    def params(self, site_id: str) -> dict[str, Any]:
        """The query parameters every KPI uses."""
        return {"site": site_id, "start": self.start, "end": self.end, "now": self.now,
                "until": self.until}


# ---- pure arithmetic -----------------------------------------------------------------------

def local_period(timezone: str, start: date, end: date, *, now: datetime) -> Period:
    """The instants of [start, end) local midnights in `timezone` (23/25 h days included)."""
    if end <= start:
        raise Invalid(f"the period must end after it starts ({start} to {end})")
    if (end - start).days > MAX_DAYS:
        raise Invalid(f"a period is at most {MAX_DAYS} days")
    if start.year < 1971 or end.year > 9998:  # the period before, and time zones, must exist
        raise Invalid("dates must lie between 1971 and 9998")
    zone = ZoneInfo(timezone)
    return Period(datetime.combine(start, time(0), zone).astimezone(UTC),
                  datetime.combine(end, time(0), zone).astimezone(UTC), now)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator; None when there is nothing to count."""
    return None if not denominator else numerator / denominator


def share(numerator: float, denominator: float, target: float | None = None,
          breakdown: dict[str, Any] | None = None) -> Kpi:
    """A ratio KPI."""
    return Kpi(ratio(numerator, denominator), numerator, denominator, target, breakdown or {})


def part(numerator: float, denominator: float, **extra: Any) -> dict[str, Any]:
    """One line of a breakdown: value, numerator, denominator and any counts beside."""
    return {"value": ratio(numerator, denominator), "numerator": numerator,
            "denominator": denominator, **extra}


def mean(total: float | None, count: int, p90: float | None, target: float | None = None,
         breakdown: dict[str, Any] | None = None) -> Kpi:
    """A mean KPI (seconds): value = total / count, with its 90th percentile."""
    if not count:
        return Kpi(None, 0.0, 0, target, breakdown or {})
    return Kpi((total or 0.0) / count, total, count, target, breakdown or {}, p90=p90)


def age_bucket(index: int) -> str:
    """The label of a backlog age bucket by its index (width_bucket over AGE_BOUNDS)."""
    return AGE_LABELS[index]


def union_seconds(intervals: Iterable[tuple[datetime, datetime]], start: datetime,
                  end: datetime) -> float:
    """Seconds of [start, end) covered by the union of the intervals."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if a < end and b > start)
    total = 0.0
    cur_a: datetime | None = None
    cur_b = start
    for a, b in clipped:
        if cur_a is None or a > cur_b:
            if cur_a is not None:
                total += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None:
        total += (cur_b - cur_a).total_seconds()
    return total


def offline_intervals(changes: Sequence[tuple[datetime, str]]
                      ) -> list[tuple[datetime, datetime]]:
    """The offline stretches of a device from its status changes in time order."""
    out: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for at, status in changes:
        if status == "offline" and since is None:
            since = at
        elif status == "online" and since is not None:
            out.append((since, at))
            since = None
    if since is not None:
        out.append((since, FOREVER))
    return out


@dataclass
class DeviceTime:
    """What equipment_intact knows of one device: its type and its bad stretches."""

    type: str
    tickets: list[tuple[datetime, datetime]] = field(default_factory=list)
    status: list[tuple[datetime, str]] = field(default_factory=list)


def intact(devices: Mapping[str, DeviceTime], start: datetime, at: datetime,
           target: float | None = None) -> Kpi:
    """设备完好率: at `at`, devices not under a major+ ticket nor offline ÷ devices; and the
    time-weighted form over [start, at): good device-seconds ÷ device-seconds."""
    if not devices or at <= start:
        return Kpi(None, 0, len(devices), target)
    good_now = 0
    good_s = total_s = 0.0
    span = (at - start).total_seconds()
    per_type: dict[str, list[float]] = {}
    worst: list[tuple[float, str]] = []
    for device_id, d in devices.items():
        bad = d.tickets + offline_intervals(sorted(d.status))
        down = union_seconds(bad, start, at)
        good_now += 0 if any(a < at < b for a, b in bad) else 1
        good_s += span - down
        total_s += span
        t = per_type.setdefault(d.type, [0.0, 0.0])
        t[0] += span - down
        t[1] += span
        if down > 0:
            worst.append((down, device_id))
    worst.sort(key=lambda w: (-w[0], w[1]))
    return Kpi(good_now / len(devices), good_now, len(devices), target, {
        "time_weighted": part(good_s, total_s),
        "by_type": {k: part(v[0], v[1]) for k, v in sorted(per_type.items())},
        "worst": [{"device": dev, "down_seconds": s, "availability": 1 - s / span}
                  for s, dev in worst[:WORST]],
    })


# ---- one function per KPI ------------------------------------------------------------------

def _rows(conn: Conn, query: str | sql.Composed, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(conn.cursor(row_factory=dict_row).execute(query, params).fetchall())


def repair_timeliness(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """零修急修及时率 = repairs resolved by their resolve deadline ÷ repairs whose resolve
    deadline fell in the period.

    Repairs: categories 公区维修, 居家维修, 设备 (any source), not cancelled. Resolved exactly at
    the deadline is on time; one resolved later, or still unresolved when the deadline has
    passed (at `now`), is late; one unresolved whose deadline is still ahead is not counted
    yet. A ticket closed without resolution counts as done when it was closed.
    """
    rows = _rows(conn, """
        SELECT category,
               count(*) FILTER (WHERE done_at <= resolve_by) AS on_time,
               count(*) FILTER (WHERE done_at IS NULL) AS open_late,
               count(*) AS due
          FROM (SELECT category, resolve_by, least(resolved_at, closed_at) AS done_at
                  FROM work_orders
                 WHERE site_id = %(site)s AND resolve_by >= %(start)s AND resolve_by < %(end)s
                   AND state <> 'cancelled' AND category = ANY(%(categories)s)) w
         WHERE done_at IS NOT NULL OR resolve_by <= %(now)s
         GROUP BY category ORDER BY category""",
                 {**p.params(site_id), "categories": list(REPAIR_CATEGORIES)})
    on_time = sum(r["on_time"] for r in rows)
    due = sum(r["due"] for r in rows)
    return share(on_time, due, targets.target("repair_timeliness"), {
        "late": due - on_time, "open_late": sum(r["open_late"] for r in rows),
        "by_category": {r["category"]: part(r["on_time"], r["due"]) for r in rows}})


def response_timeliness(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """响应及时率 = work orders acknowledged by their respond deadline ÷ work orders whose
    respond deadline fell in the period (all sources, not cancelled).

    The response is the first of acknowledged, started, resolved or closed; unanswered past
    the deadline (at `now`) is late; unanswered before it is not counted yet.
    """
    rows = _rows(conn, """
        SELECT source,
               count(*) FILTER (WHERE answered_at <= respond_by) AS on_time,
               count(*) AS due
          FROM (SELECT source, respond_by,
                       least(acknowledged_at, started_at, resolved_at, closed_at) AS answered_at
                  FROM work_orders
                 WHERE site_id = %(site)s AND respond_by >= %(start)s AND respond_by < %(end)s
                   AND state <> 'cancelled') w
         WHERE answered_at IS NOT NULL OR respond_by <= %(now)s
         GROUP BY source ORDER BY source""", p.params(site_id))
    on_time = sum(r["on_time"] for r in rows)
    due = sum(r["due"] for r in rows)
    return share(on_time, due, targets.target("response_timeliness"), {
        "late": due - on_time,
        "by_source": {r["source"]: part(r["on_time"], r["due"]) for r in rows}})


def _durations(conn: Conn, site_id: str, p: Period, stamp: str, name: str,
               targets: KpiTargets) -> Kpi:
    """Mean and p90 of `stamp` − opened_at over work orders whose `stamp` fell in the period."""
    rows = _rows(conn, sql.SQL("""
        SELECT severity, count(*) AS n, sum(s) AS total,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90
          FROM (SELECT severity, extract(epoch FROM {stamp} - opened_at)::float8 AS s
                  FROM work_orders
                 WHERE site_id = %(site)s AND {stamp} >= %(start)s AND {stamp} < %(end)s) w
         GROUP BY GROUPING SETS ((severity), ())""").format(stamp=sql.Identifier(stamp)),
                 p.params(site_id))
    overall = next((r for r in rows if r["severity"] is None), None)
    by_severity = {r["severity"]: {"value": r["total"] / r["n"], "count": r["n"],
                                   "p90": r["p90"]} for r in rows if r["severity"]}
    if overall is None:
        return mean(None, 0, None, targets.target(name))
    return mean(overall["total"], overall["n"], overall["p90"], targets.target(name),
                {"by_severity": by_severity})


def mtta_seconds(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """MTTA = mean (and p90) of acknowledged_at − opened_at, in seconds, over the work orders
    acknowledged in the period."""
    return _durations(conn, site_id, p, "acknowledged_at", "mtta_seconds", targets)


def mttr_seconds(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """MTTR = mean (and p90) of resolved_at − opened_at, in seconds, over the work orders
    resolved in the period."""
    return _durations(conn, site_id, p, "resolved_at", "mttr_seconds", targets)


def followup_rate(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """维修服务回访率 = resolved with a follow-up visit reached ÷ resolved in the period, per
    category and overall.

    Counted: work orders someone reported (sources manual and complaint; a sensor has no one
    to call back) resolved in the period, by their category; and complaints (category
    `complaints`) answered — or closed unanswered — in the period, except those closed as
    not valid. A visit counts whenever it was made, up to `now`; unreachable and refused
    attempts do not count.
    """
    rows = _rows(conn, """
        SELECT category, count(*) AS done, count(*) FILTER (WHERE reached) AS reached
          FROM (SELECT w.category, EXISTS (
                       SELECT 1 FROM follow_ups f WHERE f.work_order_id = w.id
                          AND f.outcome = 'reached' AND f.at <= %(now)s) AS reached
                  FROM work_orders w
                 WHERE w.site_id = %(site)s AND w.resolved_at >= %(start)s
                   AND w.resolved_at < %(end)s AND w.source = ANY(%(sources)s)
                UNION ALL
                SELECT %(complaints)s, EXISTS (
                       SELECT 1 FROM follow_ups f WHERE f.complaint_id = c.id
                          AND f.outcome = 'reached' AND f.at <= %(now)s)
                  FROM complaints c
                 WHERE c.site_id = %(site)s
                   AND coalesce(c.answered_at, c.closed_at) >= %(start)s
                   AND coalesce(c.answered_at, c.closed_at) < %(end)s
                   AND c.resolution IS DISTINCT FROM 'invalid') x
         GROUP BY category ORDER BY category""",
                 {**p.params(site_id), "sources": list(FOLLOWUP_SOURCES),
                  "complaints": COMPLAINTS})
    return share(sum(r["reached"] for r in rows), sum(r["done"] for r in rows),
                 targets.target("followup_rate"), {"by_category": {
                     r["category"]: part(r["reached"], r["done"],
                                         target=targets.followup(r["category"]))
                     for r in rows}})


def satisfaction(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """满意率 = follow-up visits reached in the period with satisfaction ≥ 4 (of 5) ÷ follow-up
    visits reached in the period (of work orders and complaints alike)."""
    rows = _rows(conn, """
        SELECT satisfaction, count(*) AS n FROM follow_ups
         WHERE site_id = %(site)s AND at >= %(start)s AND at < %(end)s AND outcome = 'reached'
         GROUP BY satisfaction ORDER BY satisfaction""", p.params(site_id))
    scores = {int(r["satisfaction"]): int(r["n"]) for r in rows}
    satisfied = sum(n for s, n in scores.items() if s >= SATISFIED)
    return share(satisfied, sum(scores.values()), targets.target("satisfaction"),
                 {"by_score": {str(s): scores.get(s, 0) for s in range(1, 6)}})


def complaint_handling(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """有效投诉处理率 = complaints closed as handled ÷ valid complaints due in the period.

    Due in the period: the answer deadline (answer_by) falls in it and has passed at `now`
    (or the complaint is already closed); complaints closed as not valid (invalid) are not
    valid complaints and are left out. Beside it, `answered_on_time`: of the same complaints,
    those answered (or closed) by their answer deadline.
    """
    [row] = _rows(conn, """
        SELECT count(*) AS due,
               count(*) FILTER (WHERE resolution = 'handled') AS handled,
               count(*) FILTER (WHERE coalesce(answered_at, closed_at) <= answer_by)
                   AS answered_on_time,
               count(*) FILTER (WHERE state <> 'closed') AS open
          FROM complaints
         WHERE site_id = %(site)s AND answer_by >= %(start)s AND answer_by < %(end)s
           AND resolution IS DISTINCT FROM 'invalid'
           AND (answer_by <= %(now)s OR state = 'closed')""", p.params(site_id))
    return share(row["handled"], row["due"], targets.target("complaint_handling"), {
        "answered_on_time": part(row["answered_on_time"], row["due"]),
        "open": row["open"]})


def equipment_intact(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """设备完好率 = devices in service that, at the end of the period (or now), have no open
    fault work order of severity major or higher and are not offline ÷ devices in service.

    Beside it, `time_weighted`: device-seconds in that good state ÷ device-seconds over the
    period (to now), from the work orders' open stretches (opened → resolved, closed or
    cancelled) and the device-status history (offline → online). In service: devices whose
    registry status is active (the registry keeps no history of it: for the whole period).
    A device with no status ever is taken as online.
    """
    rows = _rows(conn, """
        WITH dev AS (SELECT id, coalesce(type_id, '') AS type FROM devices
                      WHERE site_id = %(site)s AND status = 'active')
        SELECT 'device' AS kind, id AS device_id, NULL::timestamptz AS a,
               NULL::timestamptz AS b, type AS status FROM dev
        UNION ALL
        SELECT 'ticket', device_id, opened_at,
               coalesce(least(resolved_at, closed_at, cancelled_at), %(forever)s), NULL
          FROM work_orders
         WHERE site_id = %(site)s AND device_id IS NOT NULL AND severity = ANY(%(severities)s)
           AND opened_at < %(until)s
           AND coalesce(least(resolved_at, closed_at, cancelled_at), %(forever)s) > %(start)s
        UNION ALL
        SELECT 'status', d.id, s.time, NULL, s.status FROM dev d
          CROSS JOIN LATERAL (SELECT time, status FROM device_status
                               WHERE site_id = %(site)s AND device_id = d.id
                                 AND time < %(start)s ORDER BY time DESC LIMIT 1) s
        UNION ALL
        SELECT 'status', device_id, time, NULL, status FROM device_status
         WHERE site_id = %(site)s AND time >= %(start)s AND time < %(until)s""",
                 {**p.params(site_id), "severities": list(INTACT_SEVERITIES),
                  "forever": FOREVER})
    devices: dict[str, DeviceTime] = {}
    for r in rows:
        if r["kind"] == "device":
            devices[r["device_id"]] = DeviceTime(r["status"])
    for r in rows:
        d = devices.get(r["device_id"])
        if d is None:
            continue
        if r["kind"] == "ticket":
            d.tickets.append((r["a"], r["b"]))
        elif r["kind"] == "status":
            d.status.append((r["a"], r["status"]))
    return intact(devices, p.start, p.until, targets.target("equipment_intact"))


_VISITS = """
    SELECT r.route_id, coalesce(r.guard_id, g.guard_id, 'post:' || r.post, '') AS guard,
           count(*) AS expected,
           count(*) FILTER (WHERE v.timing IN ('early', 'on_time')) AS done,
           count(*) FILTER (WHERE v.timing = 'late') AS late,
           count(*) FILTER (WHERE v.timing = 'missed') AS missed,
           count(*) FILTER (WHERE v.status = 'out_of_order') AS out_of_order
      FROM patrol_runs r
      JOIN patrol_visits v ON v.run_id = r.id
      LEFT JOIN LATERAL (SELECT c.guard_id FROM patrol_visits w
                           JOIN scan_checks c ON c.scan_id = w.scan_id
                          WHERE w.run_id = r.id AND w.scan_id IS NOT NULL
                          ORDER BY w.scan_time LIMIT 1) g ON r.guard_id IS NULL
     WHERE r.site_id = %(site)s AND r.planned_start >= %(start)s AND r.planned_start < %(end)s
       AND v.timing <> 'pending' AND NOT v.equipment
     GROUP BY 1, 2 ORDER BY 1, 2"""


def guard_of_run(guard_id: str | None, first_scanner: str | None, post: str | None) -> str:
    """Whom a run's visits are counted for: its guard, else who walked it, else `post:<post>`."""
    return guard_id or first_scanner or (f"post:{post}" if post else "")


def patrol_completion(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """巡更完成率 = patrol checkpoint visits on time or early (matched within the tolerance)
    ÷ visits expected, for the runs planned to start in the period; per route and per guard.

    Expected: every checkpoint visit of those runs whose window has closed (pending ones are
    not counted yet); equipment checkpoints belong to inspection_completion. Late, missed
    and out-of-order visits are counted apart (an out-of-order visit on time still counts as
    done). A run of a post is counted for the guard who scanned it (`post:<post>` if nobody).
    """
    rows = _rows(conn, _VISITS, p.params(site_id))
    by: dict[str, dict[str, dict[str, int]]] = {"by_route": {}, "by_guard": {}}
    keys = ("expected", "done", "late", "missed", "out_of_order")
    for r in rows:
        for group, key in (("by_route", r["route_id"]), ("by_guard", r["guard"])):
            acc = by[group].setdefault(key, dict.fromkeys(keys, 0))
            for k in keys:
                acc[k] += r[k]
    total = {k: sum(r[k] for r in rows) for k in keys}
    return share(total["done"], total["expected"], targets.target("patrol_completion"), {
        "late": total["late"], "missed": total["missed"], "out_of_order": total["out_of_order"],
        **{group: {k: part(v["done"], v["expected"], late=v["late"], missed=v["missed"],
                           out_of_order=v["out_of_order"]) for k, v in items.items()}
           for group, items in by.items()}})


def inspection_completion(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """设备巡检完成率 = equipment inspection rounds completed ÷ rounds due, per route.

    A round is a run (planned to start in the period) with equipment checkpoint visits
    (日检/周检/月检 routes); it is due once none of those visits is pending, and completed
    when every one of them was scanned (late ones too; rounds with a late visit are counted
    apart as `late`).
    """
    rows = _rows(conn, """
        SELECT route_id, count(*) AS due,
               count(*) FILTER (WHERE missed = 0) AS done,
               count(*) FILTER (WHERE missed = 0 AND late > 0) AS late
          FROM (SELECT r.id, r.route_id,
                       count(*) FILTER (WHERE v.timing = 'missed') AS missed,
                       count(*) FILTER (WHERE v.timing = 'late') AS late,
                       count(*) FILTER (WHERE v.timing = 'pending') AS pending
                  FROM patrol_runs r JOIN patrol_visits v ON v.run_id = r.id AND v.equipment
                 WHERE r.site_id = %(site)s AND r.planned_start >= %(start)s
                   AND r.planned_start < %(end)s
                 GROUP BY r.id, r.route_id) rounds
         WHERE pending = 0 GROUP BY route_id ORDER BY route_id""", p.params(site_id))
    return share(sum(r["done"] for r in rows), sum(r["due"] for r in rows),
                 targets.target("inspection_completion"), {
                     "late": sum(r["late"] for r in rows),
                     "by_route": {r["route_id"]: part(r["done"], r["due"], late=r["late"])
                                  for r in rows}})


def backlog(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """Backlog = work orders open at the end of the period (or now), by age (< 1 d, 1–3 d,
    3–7 d, > 7 d since opened) and how many are past their resolve deadline (`overdue`).

    Open at an instant: opened before it and not yet resolved, closed or cancelled by it.
    value = numerator = the open count (0 is a real answer); denominator = work orders
    opened before the instant that were open at the start of the period or opened in it.
    """
    rows = _rows(conn, """
        SELECT width_bucket(extract(epoch FROM %(until)s - opened_at)::float8,
                            %(bounds)s::float8[]) AS bucket,
               count(*) FILTER (WHERE done_at IS NULL OR done_at > %(until)s) AS open,
               count(*) FILTER (WHERE (done_at IS NULL OR done_at > %(until)s)
                                  AND resolve_by < %(until)s) AS overdue,
               count(*) AS seen
          FROM (SELECT opened_at, resolve_by,
                       least(resolved_at, closed_at, cancelled_at) AS done_at
                  FROM work_orders
                 WHERE site_id = %(site)s AND opened_at < %(until)s
                   AND (state IN ('open', 'acknowledged', 'in_progress')
                        OR least(resolved_at, closed_at, cancelled_at) > %(start)s)) w
         GROUP BY 1 ORDER BY 1""", {**p.params(site_id), "bounds": list(AGE_BOUNDS)})
    ages = dict.fromkeys(AGE_LABELS, 0)
    for r in rows:
        ages[age_bucket(r["bucket"])] += r["open"]
    open_ = sum(ages.values())
    return Kpi(float(open_), open_, sum(r["seen"] for r in rows), targets.target("backlog"),
               {"ages": ages, "overdue": sum(r["overdue"] for r in rows)})


def repeat_faults(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """Repeat faults = faults in the period that repeat an earlier one within the site's
    repeat period (work_order_policy.repeat_within), as the tickets recorded them.

    A fault is an alarm or inspection finding a work order answers (work_order_refs). It is
    a repeat when it is not the first fault of its ticket (a repeat noted on, or reopening,
    a recent ticket) or its ticket was opened as a repeat of an earlier one (repeat_of).
    value = numerator = repeats; denominator = faults in the period (None: no faults).
    """
    rows = _rows(conn, """
        SELECT w.device_id, count(*) AS faults,
               count(*) FILTER (WHERE w.repeat_of IS NOT NULL OR EXISTS (
                   SELECT 1 FROM work_order_refs e WHERE e.work_order_id = r.work_order_id
                      AND (e.at, e.source, e.source_ref) < (r.at, r.source, r.source_ref)))
                   AS repeats
          FROM work_order_refs r JOIN work_orders w ON w.id = r.work_order_id
         WHERE r.at >= %(start)s AND r.at < %(end)s AND r.source = ANY(%(sources)s)
           AND w.site_id = %(site)s
         GROUP BY w.device_id ORDER BY repeats DESC, w.device_id""",
                 {**p.params(site_id), "sources": list(FAULT_SOURCES)})
    faults = sum(r["faults"] for r in rows)
    repeats = sum(r["repeats"] for r in rows)
    return Kpi(None if not faults else float(repeats), repeats, faults,
               targets.target("repeat_faults"), {
                   "by_device": {r["device_id"] or "": {"faults": r["faults"],
                                                        "repeats": r["repeats"]}
                                 for r in rows if r["repeats"]}})


def mtbf_seconds(conn: Conn, site_id: str, p: Period, targets: KpiTargets) -> Kpi:
    """MTBF = device-seconds in service over the period (to now) ÷ faults on those devices in
    it, per device type and overall (None: no fault to divide by).

    Faults as in repeat_faults (each alarm or finding a ticket answers); devices in service
    as in equipment_intact.
    """
    rows = _rows(conn, """
        WITH dev AS (SELECT id, coalesce(type_id, '') AS type FROM devices
                      WHERE site_id = %(site)s AND status = 'active'),
             f AS (SELECT w.device_id, count(*) AS n
                     FROM work_order_refs r JOIN work_orders w ON w.id = r.work_order_id
                    WHERE r.at >= %(start)s AND r.at < %(until)s
                      AND r.source = ANY(%(sources)s) AND w.site_id = %(site)s
                    GROUP BY w.device_id)
        SELECT dev.type, count(*) AS devices, coalesce(sum(f.n), 0)::int AS faults
          FROM dev LEFT JOIN f ON f.device_id = dev.id
         GROUP BY dev.type ORDER BY dev.type""",
                 {**p.params(site_id), "sources": list(FAULT_SOURCES)})
    span = (p.until - p.start).total_seconds()
    uptime = sum(r["devices"] for r in rows) * span
    faults = sum(r["faults"] for r in rows)
    by_type = {r["type"]: {"value": ratio(r["devices"] * span, r["faults"]),
                           "numerator": r["devices"] * span, "denominator": r["faults"]}
               for r in rows}
    return Kpi(ratio(uptime, faults), uptime, faults, targets.target("mtbf_seconds"),
               {"by_type": by_type})


KPIS = {
    "repair_timeliness": repair_timeliness, "response_timeliness": response_timeliness,
    "mtta_seconds": mtta_seconds, "mttr_seconds": mttr_seconds,
    "followup_rate": followup_rate, "satisfaction": satisfaction,
    "complaint_handling": complaint_handling, "equipment_intact": equipment_intact,
    "patrol_completion": patrol_completion, "inspection_completion": inspection_completion,
    "backlog": backlog, "repeat_faults": repeat_faults, "mtbf_seconds": mtbf_seconds,
}
assert tuple(KPIS) == NAMES


# ---- entry points --------------------------------------------------------------------------

def site_timezone(conn: Conn, site_id: str) -> str:
    """The site's time zone; NotFound when there is no such site."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    if row is None:
        raise NotFound(f"site {site_id!r} not found")
    return str(row["timezone"])


def compute(conn: psycopg.Connection[Any], site_id: str, start: date,
            end: date, *, now: datetime | None = None) -> dict[str, Kpi]:
    """Every KPI for a site over [start, end) (dates in the site's time zone), by name.

    `now` (default: the current time) is when the KPIs are read: deadlines after it are not
    yet due, and the period's end is clipped to it.
    """
    period = local_period(site_timezone(conn, site_id), start, end,
                          now=now or datetime.now(UTC))
    targets = load_targets(conn, site_id)
    return {name: fn(conn, site_id, period, targets) for name, fn in KPIS.items()}


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The same-length period just before [start, end)."""
    days = (end - start).days
    return start - timedelta(days=days), start


def compare(conn: Conn, site_id: str, start: date, end: date, *,
            now: datetime | None = None) -> dict[str, Kpi]:
    """Every KPI over [start, end), each with `previous`: its value over the period before."""
    now = now or datetime.now(UTC)
    current = compute(conn, site_id, start, end, now=now)
    before = compute(conn, site_id, *previous_period(start, end), now=now)
    return {name: replace(k, previous=before[name].value) for name, k in current.items()}


def sites(conn: Conn, *, limit: int) -> tuple[list[str], int]:
    """The first `limit` site ids (by id) and how many sites there are."""
    rows = _rows(conn, "SELECT id, count(*) OVER () AS total FROM sites ORDER BY id"
                       " LIMIT %(limit)s", {"limit": limit})
    return [r["id"] for r in rows], int(rows[0]["total"]) if rows else 0


def compute_many(conn: Conn, site_ids: Iterable[str], start: date, end: date, *,
                 now: datetime | None = None, previous: bool = False
                 ) -> dict[str, dict[str, Kpi]]:
    """The KPIs of several sites (the caller's sites) over the same local dates, by site."""
    now = now or datetime.now(UTC)
    fn = compare if previous else compute
    return {site: fn(conn, site, start, end, now=now) for site in site_ids}
