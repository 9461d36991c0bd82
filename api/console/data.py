"""What the console's pages show, read with the site scoping in every query."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from caretaker import resolution
from caretaker.severity import SEVERITIES
from ingest import readback
from rules.engine import for_device
from rules.model import RuleError, ThresholdRule, rule_from_row

# Units of metrics that make no sense as a line (states, codes, running counters).
NOT_A_LINE = frozenset({"bool", "code", "count", "kWh"})
SPARK_HOURS = 24
SPARK_POINTS = 48
MAX_DEVICES = 500
MAX_ALARMS = 200
MAX_POINTS = 400
MAX_METRICS = 50  # a device type's metrics, at most
RANGES = {"6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


def _rows(conn: psycopg.Connection[Any], query: str, params: Any) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def sites(conn: psycopg.Connection[Any], scope: str | None) -> list[dict[str, Any]]:
    """The sites a principal may see (its own, or all when it has none), by id."""
    return _rows(conn, "SELECT id, name, timezone FROM sites WHERE (%s::text IS NULL OR id = %s)"
                 " ORDER BY id LIMIT 200", (scope, scope))


def main_metric(metrics: dict[str, Any]) -> tuple[str, str] | None:
    """The metric a device is summarised by: its type's first one that draws as a line."""
    for name, spec in metrics.items():
        unit = str((spec or {}).get("unit", ""))
        if unit not in NOT_A_LINE:
            return name, unit
    return None


def active_alarms(conn: psycopg.Connection[Any], site: str, *, device: str | None = None,
                  limit: int = MAX_ALARMS) -> list[dict[str, Any]]:
    """Alarms not cleared, worst and newest first, with their device's name."""
    return _rows(conn, "SELECT a.*, d.name AS device_name FROM alarms a LEFT JOIN devices d"
                 " ON d.site_id = a.site_id AND d.id = a.device_id"
                 " WHERE a.site_id = %s AND a.state <> 'cleared'"
                 " AND (%s::text IS NULL OR a.device_id = %s)"
                 " ORDER BY array_position(%s::text[], a.severity), a.raised_at DESC LIMIT %s",
                 (site, device, device, list(SEVERITIES), limit))


def recent_alarms(conn: psycopg.Connection[Any], site: str, *, since: datetime,
                  limit: int = MAX_ALARMS) -> list[dict[str, Any]]:
    """Alarms cleared since a time, newest first."""
    return _rows(conn, "SELECT a.*, d.name AS device_name FROM alarms a LEFT JOIN devices d"
                 " ON d.site_id = a.site_id AND d.id = a.device_id"
                 " WHERE a.site_id = %s AND a.state = 'cleared' AND a.cleared_at >= %s"
                 " ORDER BY a.cleared_at DESC LIMIT %s", (site, since, limit))


def plant(conn: psycopg.Connection[Any], site: str, *, now: datetime) -> list[dict[str, Any]]:
    """The site's devices, those with active alarms first (worst first), then by zone and
    name; each with its main metric's last reading and unit and a day's sparkline values."""
    devices = _rows(
        conn, "SELECT d.id, d.name, d.zone_id, z.name AS zone_name, d.online, d.last_seen,"
        " d.status, coalesce(t.metrics, '{}') AS metrics, w.worst, coalesce(w.n, 0) AS alarms"
        " FROM devices d LEFT JOIN zones z ON z.site_id = d.site_id AND z.id = d.zone_id"
        " LEFT JOIN device_types t ON t.id = d.type_id"
        " LEFT JOIN LATERAL (SELECT min(array_position(%s::text[], a.severity)) AS worst,"
        "   count(*) AS n FROM alarms a WHERE a.site_id = d.site_id AND a.device_id = d.id"
        "   AND a.state <> 'cleared') w ON true"
        " WHERE d.site_id = %s AND d.status <> 'retired'"
        " ORDER BY w.worst NULLS LAST, z.name NULLS LAST, d.name LIMIT %s",
        (list(SEVERITIES), site, MAX_DEVICES))
    wanted: dict[str, str] = {}
    for dev in devices:
        main = main_metric(dev["metrics"])
        dev["metric"], dev["unit"] = main if main else (None, None)
        dev["severity"] = SEVERITIES[dev["worst"] - 1] if dev["worst"] else None
        dev["reading"], dev["spark"] = None, []
        if main:
            wanted[dev["id"]] = main[0]
    if not wanted:
        return devices
    ids, metrics = list(wanted), list(wanted.values())
    last = _rows(conn, "SELECT p.device_id, r.time, r.value FROM unnest(%s::text[], %s::text[])"
                 " AS p(device_id, metric) CROSS JOIN LATERAL (SELECT time, value FROM telemetry"
                 "  WHERE site_id = %s AND device_id = p.device_id AND metric = p.metric"
                 "  ORDER BY time DESC LIMIT 1) r", (ids, metrics, site))
    readings = {r["device_id"]: r for r in last}
    start = now - timedelta(hours=SPARK_HOURS)
    bucket = timedelta(hours=SPARK_HOURS) / SPARK_POINTS
    spark = _rows(conn, "SELECT t.device_id, time_bucket(%s, t.time, %s) AS b, avg(t.value) AS v"
                  " FROM telemetry t JOIN unnest(%s::text[], %s::text[]) AS p(device_id, metric)"
                  " ON t.device_id = p.device_id AND t.metric = p.metric"
                  " WHERE t.site_id = %s AND t.time >= %s AND t.time < %s"
                  " GROUP BY 1, 2 ORDER BY 1, 2",
                  (bucket, start, ids, metrics, site, start, now))
    series: dict[str, list[float | None]] = defaultdict(lambda: [None] * SPARK_POINTS)
    for row in spark:
        slot = int((row["b"] - start) / bucket)
        if 0 <= slot < SPARK_POINTS:
            series[row["device_id"]][slot] = row["v"]
    for dev in devices:
        dev["reading"] = readings.get(dev["id"])
        dev["spark"] = series.get(dev["id"], [])
    return devices


def device(conn: psycopg.Connection[Any], site: str, device_id: str) -> dict[str, Any] | None:
    """One device of a site with its zone and its type's metrics."""
    found = _rows(conn, "SELECT d.*, z.name AS zone_name, coalesce(t.metrics, '{}') AS metrics,"
                  " t.name AS type_name FROM devices d LEFT JOIN zones z ON z.site_id = d.site_id"
                  " AND z.id = d.zone_id LEFT JOIN device_types t ON t.id = d.type_id"
                  " WHERE d.site_id = %s AND d.id = %s", (site, device_id))
    return found[0] if found else None


def series(conn: psycopg.Connection[Any], site: str, device_id: str, *, start: datetime,
           end: datetime) -> dict[str, list[tuple[float, float]]]:
    """Each metric's readings in a range, averaged into at most MAX_POINTS buckets: metric →
    [(unix seconds, value)]. Read from the rollups the bucket width allows (1m, 1h) or raw."""
    tier, width = resolution.for_chart((end - start) / MAX_POINTS)
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    rows, _ = readback.telemetry_buckets(conn, site=site, device=device_id, metric=None,
                                         start=start, end=end, bucket=width, tier=tier,
                                         limit=MAX_POINTS * MAX_METRICS)
    for row in rows:
        if row["avg"] is not None:
            out[row["metric"]].append((row["time"].timestamp(), row["avg"]))
    for points in out.values():
        points.sort()
    return dict(out)


def thresholds(conn: psycopg.Connection[Any], site: str, dev: dict[str, Any]
               ) -> dict[str, list[dict[str, Any]]]:
    """The threshold rules that watch a device, each level a line: metric → [{rule,
    severity, value}], as the rules engine sees them (the device's overrides applied)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _rows(conn, "SELECT * FROM rules WHERE site_id = %s AND enabled"
                     " AND kind = 'threshold' AND (device_id IS NULL OR device_id = %s)"
                     " AND (device_type IS NULL OR device_type = %s) ORDER BY id LIMIT 100",
                     (site, dev["id"], dev["type_id"])):
        try:
            rule = for_device(rule_from_row(row), dev, dev["id"])
        except RuleError:
            continue  # a rule the engine could not read either draws nothing
        if isinstance(rule, ThresholdRule) and rule.metric:
            out[rule.metric].extend({"rule": rule.id, "severity": rung.severity,
                                     "value": rung.threshold} for rung in rule.ladder())
    return dict(out)


def device_alarms(conn: psycopg.Connection[Any], site: str, device_id: str, *,
                  start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A device's alarms raised in a range, or still open from before it."""
    return _rows(conn, "SELECT id, rule_id, metric, severity, state, message, raised_at,"
                 " cleared_at FROM alarms WHERE site_id = %s AND device_id = %s"
                 " AND raised_at < %s AND (cleared_at IS NULL OR cleared_at >= %s)"
                 " ORDER BY raised_at DESC LIMIT %s", (site, device_id, end, start, MAX_ALARMS))


def device_tickets(conn: psycopg.Connection[Any], site: str, device_id: str,
                   limit: int = 20) -> list[dict[str, Any]]:
    """A device's most recent work orders."""
    return _rows(conn, "SELECT id, title, state, severity, opened_at, resolve_by, overdue"
                 " FROM work_orders WHERE site_id = %s AND device_id = %s"
                 " ORDER BY opened_at DESC LIMIT %s", (site, device_id, limit))


def stamp(conn: psycopg.Connection[Any], site: str) -> str:
    """A short fingerprint of what the live pages show: it changes whenever an alarm, a work
    order, a complaint or a patrol gap is raised or changes state, or a follow-up is made."""
    # One row per table; each part changes when a row is added or changes state.
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT concat_ws('-',"
        " (SELECT concat_ws('.', max(id), max(acknowledged_at), max(cleared_at))"
        "  FROM alarms WHERE site_id = %s),"
        " (SELECT concat_ws('.', max(id), max(updated_at)) FROM work_orders WHERE site_id = %s),"
        " (SELECT concat_ws('.', max(id), max(acknowledged_at), max(resolved_at))"
        "  FROM inspection_gaps WHERE site_id = %s),"
        " (SELECT concat_ws('.', max(id), max(updated_at)) FROM complaints WHERE site_id = %s),"
        " (SELECT max(id) FROM follow_ups WHERE site_id = %s)) AS stamp",
        (site, site, site, site, site)).fetchone()
    return str(row["stamp"]) if row else ""


BOARD_STATES = ("open", "acknowledged", "in_progress", "resolved")
BOARD_CARDS = 100  # per column


def board(conn: psycopg.Connection[Any], site: str) -> dict[str, list[dict[str, Any]]]:
    """Work orders not closed, by state; in each, overdue first, then the nearest deadline
    (the response deadline while open, the resolution deadline after)."""
    out: dict[str, list[dict[str, Any]]] = {state: [] for state in BOARD_STATES}
    for row in _rows(
            conn, "SELECT * FROM (SELECT w.id, w.title, w.state, w.severity, w.source,"
            " w.assignee, w.device_id, d.name AS device_name, w.opened_at, w.overdue,"
            " w.rework_count, CASE WHEN w.state = 'open' THEN w.respond_by ELSE w.resolve_by"
            " END AS deadline, row_number() OVER (PARTITION BY w.state ORDER BY w.overdue DESC,"
            " CASE WHEN w.state = 'open' THEN w.respond_by ELSE w.resolve_by END) AS n"
            " FROM work_orders w LEFT JOIN devices d ON d.site_id = w.site_id"
            " AND d.id = w.device_id WHERE w.site_id = %s AND w.state = ANY(%s)) x"
            " WHERE n <= %s ORDER BY overdue DESC, deadline",
            (site, list(BOARD_STATES), BOARD_CARDS)):
        out[row["state"]].append(row)
    return out


def closed_today(conn: psycopg.Connection[Any], site: str, *, since: datetime,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Work orders closed or cancelled since a time, newest first."""
    return _rows(conn, "SELECT id, title, state, closed_at, cancelled_at FROM work_orders"
                 " WHERE site_id = %s AND (closed_at >= %s OR cancelled_at >= %s)"
                 " ORDER BY coalesce(closed_at, cancelled_at) DESC LIMIT %s",
                 (site, since, since, limit))


def rounds(conn: psycopg.Connection[Any], site: str, *, guard: str | None, start: datetime,
           end: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """Equipment rounds (runs with equipment checkpoints) planned in a range, newest first,
    with their equipment visits done and in all; a guard sees only their own."""
    return _rows(conn, "SELECT r.id, r.route_id, rt.name AS route_name, r.guard_id, r.post,"
                 " r.planned_start, r.planned_end, r.status, r.final, count(*) AS visits_total,"
                 " count(v.scan_id) AS visits_done FROM patrol_runs r"
                 " JOIN patrol_visits v ON v.run_id = r.id AND v.equipment"
                 " LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id"
                 " WHERE r.site_id = %s AND r.planned_start >= %s AND r.planned_start < %s"
                 " AND (%s::text IS NULL OR r.guard_id = %s)"
                 " GROUP BY r.id, rt.name ORDER BY r.planned_start DESC LIMIT %s",
                 (site, start, end, guard, guard, limit))


def findings(conn: psycopg.Connection[Any], site: str, *, guard: str | None, since: datetime,
             limit: int = 50) -> list[dict[str, Any]]:
    """Abnormal answers at equipment checkpoints since a time, newest first."""
    return _rows(conn, "SELECT f.id, f.checkpoint_id, c.name AS checkpoint_name, f.device_id,"
                 " f.guard_id, f.scan_time, f.problems, f.note, f.work_order_id"
                 " FROM inspection_findings f LEFT JOIN checkpoints c"
                 " ON c.site_id = f.site_id AND c.id = f.checkpoint_id"
                 " WHERE f.site_id = %s AND f.scan_time >= %s"
                 " AND (%s::text IS NULL OR f.guard_id = %s)"
                 " ORDER BY f.scan_time DESC LIMIT %s", (site, since, guard, guard, limit))


def complaints_live(conn: psycopg.Connection[Any], site: str,
                    limit: int = 100) -> list[dict[str, Any]]:
    """Complaints not closed, overdue first, then by their answer deadline (no names: the
    board shows what and when, the complaint's own record who)."""
    return _rows(conn, "SELECT id, number, grade, category, channel, state, team, assignee,"
                 " opened_at, answer_by, answered_at, overdue, rework_count, description"
                 " FROM complaints WHERE site_id = %s AND state <> 'closed'"
                 " ORDER BY overdue DESC, answer_by LIMIT %s", (site, limit))


def places(conn: psycopg.Connection[Any], site: str) -> dict[str, list[dict[str, Any]]]:
    """The zones and devices a manual ticket may name, by name."""
    return {"zones": _rows(conn, "SELECT id, name FROM zones WHERE site_id = %s ORDER BY name"
                           " LIMIT %s", (site, MAX_DEVICES)),
            "devices": _rows(conn, "SELECT id, name FROM devices WHERE site_id = %s"
                             " AND status <> 'retired' ORDER BY name LIMIT %s",
                             (site, MAX_DEVICES))}


MAX_RUNS = 300  # a day's runs on one site (the example site has about 60)


def runs_of_day(conn: psycopg.Connection[Any], site: str, day: date, *, guard: str | None,
                guard_id: str | None) -> list[dict[str, Any]]:
    """A site-local day's runs by guard (or post) and start, each with its visits in order
    and their classification (as the patrol engine stored it); a guard sees only their own."""
    runs = _rows(conn, "SELECT r.id, r.schedule_id, r.route_id, rt.name AS route_name,"
                 " r.guard_id, g.name AS guard_name, r.post, r.planned_start, r.planned_end,"
                 " r.status, r.flags, r.started_at, r.finished_at, r.final"
                 " FROM patrol_runs r JOIN sites st ON st.id = r.site_id"
                 " LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id"
                 " LEFT JOIN guards g ON g.site_id = r.site_id AND g.id = r.guard_id"
                 " WHERE r.site_id = %s AND (r.planned_start AT TIME ZONE st.timezone)::date = %s"
                 " AND (%s::text IS NULL OR r.guard_id = %s)"
                 " AND (%s::text IS NULL OR r.guard_id = %s)"
                 " ORDER BY r.guard_id NULLS LAST, r.post, r.planned_start, r.id LIMIT %s",
                 (site, day, guard, guard, guard_id, guard_id, MAX_RUNS))
    visits: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if runs:
        for v in _rows(conn, "SELECT v.run_id, v.seq, v.checkpoint_id, c.name AS checkpoint_name,"
                       " v.equipment, v.due_at, v.window_start, v.window_end, v.scan_time,"
                       " v.timing, v.status FROM patrol_visits v LEFT JOIN checkpoints c"
                       " ON c.site_id = v.site_id AND c.id = v.checkpoint_id"
                       " WHERE v.site_id = %s AND v.run_id = ANY(%s) ORDER BY v.run_id, v.seq",
                       (site, [r["id"] for r in runs])):
            visits[v["run_id"]].append(v)
    for run in runs:
        run["visits"] = visits.get(run["id"], [])
    return runs


def stray_scans(conn: psycopg.Connection[Any], site: str, day: date, *, guard: str | None,
                guard_id: str | None, limit: int = 200) -> list[dict[str, Any]]:
    """A day's scans the engine did not count for a visit (a checkpoint on no planned run,
    a repeat, an unknown tag), by guard and time."""
    return _rows(conn, "SELECT k.scan_id, k.scan_time, k.guard_id, k.tag, k.checkpoint_id,"
                 " c.name AS checkpoint_name, k.disposition, k.suspicious"
                 " FROM scan_checks k JOIN sites st ON st.id = k.site_id"
                 " LEFT JOIN checkpoints c ON c.site_id = k.site_id AND c.id = k.checkpoint_id"
                 " WHERE k.site_id = %s AND k.disposition <> 'matched'"
                 " AND (k.scan_time AT TIME ZONE st.timezone)::date = %s"
                 " AND (%s::text IS NULL OR k.guard_id = %s)"
                 " AND (%s::text IS NULL OR k.guard_id = %s)"
                 " ORDER BY k.guard_id, k.scan_time LIMIT %s",
                 (site, day, guard, guard, guard_id, guard_id, limit))


def guards(conn: psycopg.Connection[Any], site: str, *, guard: str | None
           ) -> list[dict[str, Any]]:
    """The site's guards (a guard: only themselves), by name."""
    return _rows(conn, "SELECT id, name FROM guards WHERE site_id = %s"
                 " AND (%s::text IS NULL OR id = %s) ORDER BY name LIMIT 200",
                 (site, guard, guard))


def overdue_tickets(conn: psycopg.Connection[Any], site: str, *, now: datetime,
                    limit: int = 30) -> list[dict[str, Any]]:
    """Work orders past their deadline (response while open, resolution after), the most
    late first."""
    return _rows(conn, "SELECT * FROM (SELECT w.id, w.title, w.state, w.severity, w.assignee,"
                 " d.name AS device_name, CASE WHEN w.state = 'open' THEN w.respond_by"
                 " ELSE w.resolve_by END AS deadline FROM work_orders w LEFT JOIN devices d"
                 " ON d.site_id = w.site_id AND d.id = w.device_id WHERE w.site_id = %s"
                 " AND w.state = ANY(%s)) x WHERE deadline < %s ORDER BY deadline LIMIT %s",
                 (site, list(BOARD_STATES[:3]), now, limit))
