"""The fire-pump test log kept in the database: the section, the job, and the log as read back.

The job (`fire_pump_job`, run by the rules worker under its advisory lock, in one
transaction) does two things per pump. It scans the pump's telemetry from where it stopped
(`fire_pump_scans.scanned_to`) and records each finished start in `fire_pump_runs`; when
older history arrives (a backfill), the scan starts again from the pump's first reading.
Then it judges every whole period of each required test that the scan has passed (or that
ended `judge_silent_after` ago): one `fire_pump_tests` row per pump, test and period, and
for a missed or failed test a work order (source `preventive`), whose opening notifies
through tickets/notify.py. Unique keys make every write idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from rules import fire_pumps as fp
from tickets.work_orders import open_work_order

log = logging.getLogger(__name__)

SCAN_SPAN = timedelta(days=2)  # telemetry read per query
SCAN_WINDOWS = 16  # queries per pump and tick: a backfilled month is caught up in a tick
JUDGE_LIMIT = 100  # periods judged per pump, test and tick
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


# ---- the scan ------------------------------------------------------------------------------

def samples(conn: psycopg.Connection[Any], site_id: str, device_id: str, start: datetime,
            end: datetime) -> list[fp.Sample]:
    """A pump's samples with start <= time <= end, in time order."""
    by_time: dict[datetime, dict[str, Any]] = {}
    for r in _rows(conn, "SELECT time, metric, value, text_value FROM telemetry"
                   " WHERE site_id = %s AND device_id = %s AND metric = ANY(%s)"
                   " AND time >= %s AND time <= %s ORDER BY time",
                   (site_id, device_id, list(fp.METRICS), start, end)):
        by_time.setdefault(r["time"], {})[r["metric"]] = (
            r["value"] if r["value"] is not None else r["text_value"])
    out = []
    for t, v in by_time.items():
        run, p, f, m = (v.get(k) for k in fp.METRICS)
        out.append(fp.Sample(t, None if run is None else bool(run),
                             p if isinstance(p, float) else None,
                             f if isinstance(f, float) else None,
                             m if isinstance(m, str) else None))
    return out


EDGES = {
    "ASC": "SELECT time FROM telemetry WHERE site_id = %s AND device_id = %s"
           " AND metric = %s AND time <= %s ORDER BY time ASC LIMIT 1",
    "DESC": "SELECT time FROM telemetry WHERE site_id = %s AND device_id = %s"
            " AND metric = %s AND time <= %s ORDER BY time DESC LIMIT 1",
}
EDGE_METRICS = ("running", "flow")  # what tells whether a pump runs


def _edge(conn: psycopg.Connection[Any], site_id: str, device_id: str, now: datetime,
          order: Literal["ASC", "DESC"]) -> datetime | None:
    """The pump's first (ASC) or newest (DESC) reading of running or flow, up to now."""
    found: list[datetime] = [row["time"] for m in EDGE_METRICS
             if (row := _one(conn, EDGES[order], (site_id, device_id, m, now))) is not None]
    if not found:
        return None
    return min(found) if order == "ASC" else max(found)


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


def scan(conn: psycopg.Connection[Any], site_id: str, device_id: str, spec: fp.FirePumpSpec,
         now: datetime) -> dict[str, Any] | None:
    """Record the pump's finished runs since the last scan; its scan row (None: no data)."""
    first = _edge(conn, site_id, device_id, now, "ASC")
    if first is None:
        return None
    state = _one(conn, "SELECT since, scanned_to FROM fire_pump_scans WHERE site_id = %s"
                 " AND device_id = %s FOR UPDATE", (site_id, device_id))
    if state is None or first < state["since"]:  # new, or older history arrived: rescan
        state = {"since": first, "scanned_to": first}
    latest = _edge(conn, site_id, device_id, now, "DESC") or first
    cursor: datetime = state["scanned_to"]
    span = SCAN_SPAN
    for _ in range(SCAN_WINDOWS):
        if cursor >= latest:
            break
        end = min(latest, cursor + span)
        got = samples(conn, site_id, device_id, cursor, end)
        runs, resume = fp.detect_runs(got, flow_floor=spec.flow_floor)
        record_runs(conn, site_id, device_id, runs, now)
        if resume is not None and resume > cursor:
            cursor, span = resume, SCAN_SPAN
        elif any(fp.running(s, spec.flow_floor) for s in got):
            if end >= latest:
                break  # a run still going: seen whole next time
            span *= 2  # a run longer than the window
        else:
            cursor = end  # nothing readable here
    conn.execute(
        "INSERT INTO fire_pump_scans (site_id, device_id, since, scanned_to, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site_id, device_id) DO UPDATE"
        " SET since = EXCLUDED.since, scanned_to = EXCLUDED.scanned_to,"
        " updated_at = EXCLUDED.updated_at",
        (site_id, device_id, state["since"], cursor, now))
    return {"since": state["since"], "scanned_to": cursor}


# ---- judging -------------------------------------------------------------------------------

def _runs_between(conn: psycopg.Connection[Any], site_id: str, device_id: str,
                  start: datetime, end: datetime) -> list[dict[str, Any]]:
    return _rows(conn, "SELECT * FROM fire_pump_runs WHERE site_id = %s AND device_id = %s"
                 " AND started_at >= %s AND started_at < %s ORDER BY started_at",
                 (site_id, device_id, start, end))


def as_run(row: dict[str, Any]) -> fp.Run:
    """A stored run as the pure module's Run."""
    return fp.Run(row["started_at"], row["stopped_at"], row["pressure_reached"],
                  row["start_pressure"], row["stop_pressure"], row["flow_max"], row["mode"])


def _sample_count(conn: psycopg.Connection[Any], site_id: str, device_id: str,
                  start: datetime, end: datetime) -> int:
    row = _one(conn, "SELECT count(DISTINCT time) AS n FROM telemetry WHERE site_id = %s"
               " AND device_id = %s AND metric = ANY(%s) AND time >= %s AND time < %s",
               (site_id, device_id, list(EDGE_METRICS), start, end))
    return int(row["n"]) if row else 0


def verdict(conn: psycopg.Connection[Any], site_id: str, device_id: str, test: fp.Test,
            start: datetime, end: datetime, spec: fp.FirePumpSpec
            ) -> tuple[fp.Verdict, int | None]:
    """The verdict on one pump, test and period, and the id of the run it rests on."""
    stored = _runs_between(conn, site_id, device_id, start, end)
    runs = [as_run(r) for r in stored]
    if test == "jockey_daily":
        v = fp.jockey_day(runs, _sample_count(conn, site_id, device_id, start, end), spec)
    else:
        v = fp.start_test(test, runs, spec)
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
    description = (f"{title}. {v.reason or ''} GB 50974-2014 §14.0.4; see "
                   f"/api/v1/compliance/fire-pumps?site={site_id}").replace(" . ", ". ")
    return open_work_order(
        conn, site_id=site_id, device_id=pump["id"], severity=spec.severity, title=title,
        description=description, source="preventive",
        source_ref=f"fire-pump-test:{site_id}:{pump['id']}:{test}:{start.isoformat()}",
        now=now, zone_id=pump["zone_id"])


def judge(conn: psycopg.Connection[Any], site_id: str, tz: str, pump: dict[str, Any],
          state: dict[str, Any], spec: fp.FirePumpSpec, now: datetime) -> list[dict[str, Any]]:
    """Judge every ready period of the pump's required tests; the verdicts newly stored."""
    out = []
    ready = min(now, max(state["scanned_to"], now - spec.judge_silent_after))
    for test in fp.tests_for(pump["kind"], spec):
        last = _one(conn, "SELECT max(period_start) AS at FROM fire_pump_tests"
                    " WHERE site_id = %s AND device_id = %s AND test = %s",
                    (site_id, pump["id"], test))
        since = state["since"] if last is None or last["at"] is None else fp.next_period(
            test, last["at"], tz)[0]
        for start, end in fp.periods(test, since=since, until=ready, tz=tz, limit=JUDGE_LIMIT):
            v, run_id = verdict(conn, site_id, pump["id"], test, start, end, spec)
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
    """Scan every site's fire and jockey pumps and judge their ready periods."""
    judged: list[dict[str, Any]] = []
    for site in _rows(conn, "SELECT s.id, s.timezone, f.settings FROM sites s"
                      " LEFT JOIN fire_pump_settings f ON f.site_id = s.id ORDER BY s.id"):
        spec = fp.FirePumpSpec.model_validate(site["settings"] or {})
        for pump in pumps(conn, site["id"], spec):
            state = scan(conn, site["id"], pump["id"], spec, now)
            if state is not None:
                judged += judge(conn, site["id"], site["timezone"], pump, state, spec, now)
    return judged


# ---- the log, as the API and the weekly report show it -------------------------------------

RUN_LIMIT = 500  # fire-pump starts listed per pump (jockey starts are summed per day)


def _run_public(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "started_at": row["started_at"], "stopped_at": row["stopped_at"],
            "duration_s": round((row["stopped_at"] - row["started_at"]).total_seconds(), 1),
            "pressure_reached": row["pressure_reached"], "flow_max": row["flow_max"],
            "start_pressure": row["start_pressure"], "stop_pressure": row["stop_pressure"],
            "mode": row["mode"]}


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
        starts = [] if pump["kind"] == "jockey" else [_run_public(r) for r in _rows(
            conn, "SELECT * FROM fire_pump_runs WHERE site_id = %s AND device_id = %s"
            " AND started_at >= %s AND started_at < %s ORDER BY started_at LIMIT %s",
            (site_id, pump["id"], start, end, RUN_LIMIT))]
        out.append({"device_id": pump["id"], "name": pump["name"], "kind": pump["kind"],
                    "periods": sorted(periods, key=lambda p: (p["period_start"], p["test"])),
                    "starts": starts})
    return out
