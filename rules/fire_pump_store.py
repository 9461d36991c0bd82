"""The fire-pump test log kept in the database: the section, the job, and the log as read back.

The job (`fire_pump_job`, run by the rules worker under its advisory lock, in one
transaction) judges each pump's periods of each required test once they have ended: when
the pump has reported past the end (or `judge_silent_after` has passed) and the count of
its readings from its first up to that end has not changed for SETTLE — so a backfill or a
gateway's late upload still arriving, in any order, is waited for. It then reads the
period's runs from telemetry into `fire_pump_runs` and stores one `fire_pump_tests` row; a
missed or failed test is a gap and opens a work order (source `preventive`), whose opening
notifies through tickets/notify.py. Unique keys make every write idempotent: any number of
workers, any restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from rules import fire_pumps as fp
from tickets.work_orders import open_work_order

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=1)  # a pump's history holds still this long before it is judged
HORIZON = timedelta(days=400)  # periods further back are not judged (telemetry is kept 365 d)
LOOK_BEFORE = timedelta(hours=1)  # readings read before a period, to see a run's start
LOOK_AFTER = timedelta(days=1)  # and after it, to see the end of a run begun in it
JUDGE_LIMIT = 31  # periods judged per pump, test and tick (bounds a catch-up tick)
CLUSTER = timedelta(hours=2)  # runs closer than this are read in one query (a jockey's day)
Kind = Literal["fire", "jockey"]

TEST_TITLE = {
    "weekly_auto": "Fire pump weekly automatic start test 消防泵每周自动启泵试验",
    "monthly_manual": "Fire pump monthly manual start 消防泵每月手动启泵",
    "jockey_daily": "Jockey pump daily check 稳压泵每日检查",
}
STATUS_TITLE = {"missed": "missed 未做", "failed": "failed 不合格"}


def _rows(conn: psycopg.Connection[Any], query: Any, params: Any = ()) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def _one(conn: psycopg.Connection[Any], query: Any, params: Any = ()) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchone()


def load_fire_pumps(conn: psycopg.Connection[Any], site_id: str, spec: fp.FirePumpSpec, *,
                    now: datetime) -> None:
    """Store a site's `fire_pumps:` section (the loader of the site-file section)."""
    conn.execute(
        "INSERT INTO fire_pump_settings (site_id, settings, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET settings = EXCLUDED.settings,"
        " updated_at = EXCLUDED.updated_at"
        " WHERE fire_pump_settings.settings <> EXCLUDED.settings",
        (site_id, Jsonb(spec.model_dump(mode="json", exclude_unset=True)), now))


def site_spec(conn: psycopg.Connection[Any], site_id: str) -> fp.FirePumpSpec:
    """A site's fire-pump settings (the defaults when its file has no `fire_pumps:`)."""
    row = _one(conn, "SELECT settings FROM fire_pump_settings WHERE site_id = %s", (site_id,))
    return fp.FirePumpSpec.model_validate(row["settings"] if row else {})


def pumps(conn: psycopg.Connection[Any], site_id: str, spec: fp.FirePumpSpec
          ) -> list[dict[str, Any]]:
    """The site's active fire and jockey pumps: id, name, zone and kind ("fire"/"jockey")."""
    found = _rows(conn, "SELECT id, name, zone_id, type_id FROM devices WHERE site_id = %s"
                  " AND status = 'active' AND type_id = ANY(%s) ORDER BY id",
                  (site_id, [*spec.fire_pump_types, *spec.jockey_pump_types]))
    return [{**d, "kind": "fire" if d["type_id"] in spec.fire_pump_types else "jockey"}
            for d in found]


# ---- reading a pump's telemetry -----------------------------------------------------------

EDGES = {
    "ASC": "SELECT time FROM telemetry WHERE site_id = %s AND device_id = %s"
           " AND metric = 'running' AND time <= %s ORDER BY time ASC LIMIT 1",
    "DESC": "SELECT time FROM telemetry WHERE site_id = %s AND device_id = %s"
            " AND metric = 'running' AND time <= %s ORDER BY time DESC LIMIT 1",
}


def _edge(conn: psycopg.Connection[Any], site_id: str, device_id: str, now: datetime,
          order: Literal["ASC", "DESC"]) -> datetime | None:
    """The pump's first (ASC) or newest (DESC) `running` reading up to now."""
    row = _one(conn, EDGES[order], (site_id, device_id, now))
    return None if row is None else row["time"]


def samples(conn: psycopg.Connection[Any], site_id: str, device_id: str, start: datetime,
            end: datetime) -> list[fp.Sample]:
    """A pump's samples with start <= time <= end, in time order."""
    by_time: dict[datetime, dict[str, Any]] = {}
    for t, metric, value, text in conn.cursor(row_factory=tuple_row).execute(
            "SELECT time, metric, value, text_value FROM telemetry"
            " WHERE site_id = %s AND device_id = %s AND metric = ANY(%s)"
            " AND time >= %s AND time <= %s ORDER BY time",
            (site_id, device_id, list(fp.METRICS), start, end)):
        by_time.setdefault(t, {})[metric] = value if value is not None else text
    out = []
    for t, v in by_time.items():
        run, p, f, m = (v.get(k) for k in fp.METRICS)
        out.append(fp.Sample(t, None if run is None else bool(run),
                             p if isinstance(p, float) else None,
                             f if isinstance(f, float) else None,
                             m if isinstance(m, str) else None))
    return out


# Where `running` changes, with the reading before each change: all run_windows needs.
CHANGES = """
SELECT time, running, before FROM (
  SELECT time, value > 0.5 AS running, lag(value > 0.5) OVER w AS was, lag(time) OVER w AS before
    FROM telemetry
   WHERE site_id = %s AND device_id = %s AND metric = 'running' AND value IS NOT NULL
     AND time >= %s AND time <= %s
  WINDOW w AS (ORDER BY time)) s
 WHERE was IS NULL OR running <> was ORDER BY time"""


def _clusters(windows: Sequence[fp.Window]) -> list[tuple[datetime, datetime]]:
    """Spans covering the windows, neighbours less than CLUSTER apart read as one."""
    spans: list[tuple[datetime, datetime]] = []
    for w in windows:
        if spans and w.before - spans[-1][1] < CLUSTER:
            spans[-1] = (spans[-1][0], w.stop)
        else:
            spans.append((w.before, w.stop))
    return spans


def period_runs(conn: psycopg.Connection[Any], site_id: str, device_id: str, start: datetime,
                end: datetime) -> tuple[list[fp.Run], bool]:
    """The runs that started in [start, end), and whether one that started there still goes.

    Where `running` changes is found in the database (a week of readings every 10 s is 60 000
    rows of one metric, and a handful of changes); every metric is read only around the runs.
    """
    points: list[tuple[datetime, bool]] = []
    for t, on, before in conn.cursor(row_factory=tuple_row).execute(
            CHANGES, (site_id, device_id, start - LOOK_BEFORE, end + LOOK_AFTER)):
        if before is not None:
            points.append((before, not on))
        points.append((t, on))
    windows, going = fp.run_windows(points)
    mine = [w for w in windows if start <= w.start < end]
    runs: list[fp.Run] = []
    for a, b in _clusters(mine):
        runs += [r for r in fp.detect_runs(samples(conn, site_id, device_id, a, b))[0]
                 if start <= r.started_at < end]
    return runs, going is not None and start <= going < end


def record_runs(conn: psycopg.Connection[Any], site_id: str, device_id: str,
                runs: Sequence[fp.Run], now: datetime) -> int:
    """Insert runs not recorded yet; how many were new."""
    new = 0
    for r in runs:
        new += conn.execute(
            "INSERT INTO fire_pump_runs (site_id, device_id, started_at, stopped_at,"
            " pressure_reached, start_pressure, stop_pressure, flow_max, mode, recorded_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (site_id, device_id, started_at) DO NOTHING",
            (site_id, device_id, r.started_at, r.stopped_at, r.pressure_reached,
             r.start_pressure, r.stop_pressure, r.flow_max, r.mode, now)).rowcount
    return new


def _reading_count(conn: psycopg.Connection[Any], site_id: str, device_id: str,
                   start: datetime, end: datetime) -> int:
    row = _one(conn, "SELECT count(*) AS n FROM telemetry WHERE site_id = %s"
               " AND device_id = %s AND metric = 'running' AND time >= %s AND time < %s",
               (site_id, device_id, start, end))
    return int(row["n"]) if row else 0


# ---- judging -------------------------------------------------------------------------------

def as_run(row: dict[str, Any]) -> fp.Run:
    """A stored run as the pure module's Run."""
    return fp.Run(row["started_at"], row["stopped_at"], row["pressure_reached"],
                  row["start_pressure"], row["stop_pressure"], row["flow_max"], row["mode"])


def verdict(conn: psycopg.Connection[Any], site_id: str, device_id: str, test: fp.Test,
            start: datetime, end: datetime, readings: int, spec: fp.FirePumpSpec
            ) -> tuple[fp.Verdict, int | None]:
    """The verdict on one pump, test and period from its stored runs, and the run's id."""
    stored = _rows(conn, "SELECT * FROM fire_pump_runs WHERE site_id = %s AND device_id = %s"
                   " AND started_at >= %s AND started_at < %s ORDER BY started_at",
                   (site_id, device_id, start, end))
    runs = [as_run(r) for r in stored]
    v = (fp.jockey_day(runs, readings, spec) if test == "jockey_daily"
         else fp.start_test(test, runs, spec))
    ids = {r["started_at"]: int(r["id"]) for r in stored}
    return v, (ids.get(v.run.started_at) if v.run is not None else None)


def _period_label(test: fp.Test, start: datetime, tz: str) -> str:
    day = start.astimezone(ZoneInfo(tz)).date()
    if test == "weekly_auto":
        return f"week of {day.isoformat()}"
    if test == "monthly_manual":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _open_gap(conn: psycopg.Connection[Any], pump: dict[str, Any], site_id: str, tz: str,
              test: fp.Test, start: datetime, v: fp.Verdict, spec: fp.FirePumpSpec,
              now: datetime) -> int:
    title = (f"{TEST_TITLE[test]} {STATUS_TITLE[v.status]}: {pump['name']}, "
             f"{_period_label(test, start, tz)}")
    description = " ".join(filter(None, (
        f"{title}.", f"{v.reason}." if v.reason else None, "GB 50974-2014 §14.0.4; the log:",
        f"/api/v1/compliance/fire-pumps?site={site_id}")))
    return open_work_order(
        conn, site_id=site_id, device_id=pump["id"], severity=spec.severity, title=title,
        description=description, source="preventive",
        source_ref=f"fire-pump-test:{site_id}:{pump['id']}:{test}:{start.isoformat()}",
        now=now, zone_id=pump["zone_id"])


def _settled(conn: psycopg.Connection[Any], site_id: str, device_id: str, since: datetime,
             end: datetime, now: datetime) -> bool:
    """Whether the pump's readings in [since, end) have not changed for SETTLE (noting the
    count when they have): nothing of its history before `end` is still arriving."""
    count = _reading_count(conn, site_id, device_id, since, end)
    row = _one(conn, "SELECT history_end, history_count, seen_at FROM fire_pump_scans"
               " WHERE site_id = %s AND device_id = %s FOR UPDATE", (site_id, device_id))
    if row is not None and row["history_end"] == end and row["history_count"] == count:
        return bool(now - row["seen_at"] >= SETTLE)
    conn.execute("UPDATE fire_pump_scans SET history_end = %s, history_count = %s,"
                 " seen_at = %s, updated_at = %s WHERE site_id = %s AND device_id = %s",
                 (end, count, now, now, site_id, device_id))
    return False


def judge(conn: psycopg.Connection[Any], site_id: str, tz: str, pump: dict[str, Any],
          spec: fp.FirePumpSpec, now: datetime) -> list[dict[str, Any]]:
    """Judge the pump's ended periods once their data is in; the verdicts newly stored.

    A period is ready when the pump has reported past its end, or `judge_silent_after` has
    passed since it ended. Ready periods are judged when the pump's readings from its first
    up to the last ready end have not changed for SETTLE, and no run begun in them still goes.
    """
    first = _edge(conn, site_id, pump["id"], now, "ASC")
    if first is None:
        return []
    newest = _edge(conn, site_id, pump["id"], now, "DESC") or first
    conn.execute(
        "INSERT INTO fire_pump_scans (site_id, device_id, since, updated_at) VALUES"
        " (%s, %s, %s, %s) ON CONFLICT (site_id, device_id) DO UPDATE SET since ="
        " EXCLUDED.since, updated_at = EXCLUDED.updated_at"
        " WHERE fire_pump_scans.since <> EXCLUDED.since", (site_id, pump["id"], first, now))
    since = max(first, now - HORIZON)
    ready: list[tuple[fp.Test, datetime, datetime]] = []
    last_end: datetime | None = None  # of every ready period, judged this tick or later
    for test in fp.tests_for(pump["kind"], spec):
        judged = {r["period_start"] for r in _rows(
            conn, "SELECT period_start FROM fire_pump_tests WHERE site_id = %s"
            " AND device_id = %s AND test = %s AND period_start >= %s",
            (site_id, pump["id"], test, since - timedelta(days=31)))}
        todo = [p for p in fp.periods(test, since=since, until=now, tz=tz, limit=500)
                if p[0] not in judged
                and (newest >= p[1] or now >= p[1] + spec.judge_silent_after)]
        ready += [(test, start, end) for start, end in todo[:JUDGE_LIMIT]]
        if todo:
            last_end = max(todo[-1][1], last_end or todo[-1][1])
    if last_end is None or not _settled(conn, site_id, pump["id"], since, last_end, now):
        return []
    out = []
    for test, start, end in ready:
        runs, going = period_runs(conn, site_id, pump["id"], start, end)
        if going and now < end + spec.judge_silent_after:
            continue  # a run begun in the period still goes (a stuck one stops being waited for)
        record_runs(conn, site_id, pump["id"], runs, now)
        readings = _reading_count(conn, site_id, pump["id"], start, end)
        v, run_id = verdict(conn, site_id, pump["id"], test, start, end, readings, spec)
        row = _one(conn, "INSERT INTO fire_pump_tests (site_id, device_id, test,"
                   " period_start, period_end, status, run_id, reason, details, judged_at)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                   " ON CONFLICT (site_id, device_id, test, period_start) DO NOTHING"
                   " RETURNING id",
                   (site_id, pump["id"], test, start, end, v.status, run_id, v.reason,
                    Jsonb(v.details), now))
        if row is None:
            continue
        wo = None
        if v.status != "done":
            wo = _open_gap(conn, pump, site_id, tz, test, start, v, spec, now)
            conn.execute("UPDATE fire_pump_tests SET work_order_id = %s WHERE id = %s",
                         (wo, row["id"]))
            log.info("fire-pump test gap: %s/%s %s %s (%s), work order %s", site_id,
                     pump["id"], test, start.isoformat(), v.status, wo)
        out.append({"device_id": pump["id"], "test": test, "period_start": start,
                    "status": v.status, "work_order_id": wo})
    return out


def fire_pump_job(conn: psycopg.Connection[Any], now: datetime) -> list[dict[str, Any]]:
    """Judge every site's fire and jockey pumps' ended periods; the verdicts newly stored."""
    judged: list[dict[str, Any]] = []
    for site in _rows(conn, "SELECT s.id, s.timezone, f.settings FROM sites s"
                      " LEFT JOIN fire_pump_settings f ON f.site_id = s.id ORDER BY s.id"):
        spec = fp.FirePumpSpec.model_validate(site["settings"] or {})
        for pump in pumps(conn, site["id"], spec):
            judged += judge(conn, site["id"], site["timezone"], pump, spec, now)
    return judged


# ---- the log, as the API and the weekly report show it -------------------------------------

RUN_LIMIT = 500  # fire-pump starts listed per pump (jockey starts are summed per day)
LIVE_SPAN = timedelta(days=35)  # starts not yet recorded are read from this far back at most


def _run_public(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "started_at": row["started_at"], "stopped_at": row["stopped_at"],
            "duration_s": round((row["stopped_at"] - row["started_at"]).total_seconds(), 1),
            "pressure_reached": row["pressure_reached"], "flow_max": row["flow_max"],
            "start_pressure": row["start_pressure"], "stop_pressure": row["stop_pressure"],
            "mode": row["mode"]}


def _starts(conn: psycopg.Connection[Any], site_id: str, device_id: str, start: datetime,
            end: datetime, now: datetime) -> list[dict[str, Any]]:
    """A fire pump's starts in [start, end): those recorded when their periods were judged,
    and, over the last LIVE_SPAN, those read from telemetry as they are (id null until
    recorded: in a period not judged yet, or before the pump's log began)."""
    stored = _rows(conn, "SELECT * FROM fire_pump_runs WHERE site_id = %s AND device_id = %s"
                   " AND started_at >= %s AND started_at < %s ORDER BY started_at LIMIT %s",
                   (site_id, device_id, start, end, RUN_LIMIT))
    live_from, live_to = max(start, now - LIVE_SPAN), min(end, now)
    found = {r["started_at"]: _run_public(r) for r in stored}
    if live_from < live_to:
        for run in period_runs(conn, site_id, device_id, live_from, live_to)[0]:
            found.setdefault(run.started_at, _run_public(
                {"id": None, "started_at": run.started_at, "stopped_at": run.stopped_at,
                 "pressure_reached": run.pressure_reached, "flow_max": run.flow_max,
                 "start_pressure": run.start_pressure, "stop_pressure": run.stop_pressure,
                 "mode": run.mode}))
    return [found[k] for k in sorted(found)][:RUN_LIMIT]


def fire_pump_log(conn: psycopg.Connection[Any], site_id: str, start: datetime,
                  end: datetime, *, now: datetime) -> list[dict[str, Any]]:
    """Per pump: each period of a required test overlapping [start, end), and its starts.

    A period's status is its verdict (done, failed, missed), or `pending` while it has not
    ended, or `unjudged` (before the pump's log began, or its data not read yet).
    """
    spec = site_spec(conn, site_id)
    site = _one(conn, "SELECT timezone FROM sites WHERE id = %s", (site_id,))
    tz = site["timezone"] if site else "UTC"
    verdicts: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for r in _rows(conn, "SELECT t.*, r.started_at, r.stopped_at, r.pressure_reached,"
                   " r.start_pressure, r.stop_pressure, r.flow_max, r.mode"
                   " FROM fire_pump_tests t LEFT JOIN fire_pump_runs r ON r.id = t.run_id"
                   " WHERE t.site_id = %s AND t.period_start < %s AND t.period_end > %s",
                   (site_id, end, start)):
        verdicts[(r["device_id"], r["test"], r["period_start"])] = r
    out = []
    for pump in pumps(conn, site_id, spec):
        periods = []
        for test in fp.tests_for(pump["kind"], spec):
            first, _ = fp.period_of(test, start, tz)
            for p_start, p_end in fp.periods(test, since=first, until=end + timedelta(days=31),
                                             tz=tz, limit=400):
                if p_start >= end:
                    break
                v = verdicts.get((pump["id"], test, p_start))
                periods.append({
                    "test": test, "period_start": p_start, "period_end": p_end,
                    "status": v["status"] if v else "pending" if p_end > now else "unjudged",
                    "reason": v["reason"] if v else None,
                    "details": v["details"] if v else {},
                    "work_order_id": v["work_order_id"] if v else None,
                    "run": _run_public({**v, "id": v["run_id"]})
                    if v and v["run_id"] is not None else None})
        starts = [] if pump["kind"] == "jockey" else _starts(conn, site_id, pump["id"], start,
                                                             end, now)
        out.append({"device_id": pump["id"], "name": pump["name"], "kind": pump["kind"],
                    "periods": sorted(periods, key=lambda p: (p["period_start"], p["test"])),
                    "starts": starts})
    return out
