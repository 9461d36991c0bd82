"""The example site with a day of readings and alarms, written straight into the database."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from caretaker.site_config import example_document
from reports import handover
from stack.app import load_site

SITE = "riverside"


def seed(conn: psycopg.Connection[Any], now: datetime) -> None:
    """Riverside Gardens loaded; pump-1's vibration and every tank's level over the last day
    (every 5 minutes); pump-1 vibrating past its major level with an active alarm; one
    cleared alarm yesterday; a work order on pump-1."""
    load_site(conn, example_document(), now=now - timedelta(days=2))
    rows = []
    for step in range(24 * 12):
        at = now - timedelta(minutes=5 * step)
        wobble = math.sin(step / 10)
        rows.append((at, SITE, "pump-1", "vibration", 3.0 + wobble + (5 if step < 6 else 0)))
        rows.append((at, SITE, "pump-1", "flow", 40 + 5 * wobble))
        rows.append((at, SITE, "tank-roof-a", "level", 70 + 10 * wobble))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                        " VALUES (%s, %s, %s, %s, %s)", rows)
    conn.execute("UPDATE devices SET online = true, last_seen = %s WHERE site_id = %s",
                 (now, SITE))
    alarm = add_alarm(conn, "pump-1", "pump-vibration", "major", "Pump vibration high 8.0 mm/s",
              raised=now - timedelta(minutes=25), metric="vibration", value=8.0)
    cleared = add_alarm(conn, "tank-roof-a", "tank-level-low", "minor", "Tank level low",
                        raised=now - timedelta(hours=20), metric="level", value=20)
    conn.execute("UPDATE alarms SET state = 'cleared', cleared_at = %s, cleared_by = 'system'"
                 " WHERE id = %s", (now - timedelta(hours=19), cleared))
    conn.execute("INSERT INTO work_orders (site_id, device_id, rule_id, alarm_id, source,"
                 " severity, priority, title, opened_at, respond_by, resolve_by, updated_at)"
                 " VALUES (%s, 'pump-1', 'pump-vibration', %s, 'alarm', 'major', 2,"
                 " 'Check pump 1 bearings', %s, %s, %s, %s)",
                 (SITE, alarm, now - timedelta(hours=3), now, now + timedelta(hours=20),
                  now - timedelta(hours=3)))

    run = conn.execute("INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id,"
                       " planned_start, start_deadline, planned_end, ordered, min_duration,"
                       " status) VALUES (%s, 'night-perimeter-2h', 'night-perimeter', 'g-zhang',"
                       " %s, %s, %s, true, '30 minutes', 'incomplete') RETURNING id",
                       (SITE, now - timedelta(hours=4), now - timedelta(hours=3, minutes=50),
                        now - timedelta(hours=3))).fetchone()
    assert run is not None
    for seq, checkpoint in enumerate(("cp-gate-main", "cp-gate-east", "cp-perimeter-n"), 1):
        conn.execute("INSERT INTO inspection_gaps (site_id, route_id, schedule_id, run_id, seq,"
                     " checkpoint_id, guard_id, kind, window_start, window_end, detected_at)"
                     " VALUES (%s, 'night-perimeter', 'night-perimeter-2h', %s, %s, %s,"
                     " 'g-zhang', 'missed_checkpoint', %s, %s, %s)",
                     (SITE, run["id"], seq, checkpoint, now - timedelta(hours=4),
                      now - timedelta(hours=3), now - timedelta(hours=3)))

    day_run(conn, now)
    for days, status in ((-1, "incomplete"), (1, "scheduled")):
        start = now + timedelta(days=days)
        row = conn.execute(
            "INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id, planned_start,"
            " start_deadline, planned_end, ordered, min_duration, status, final) VALUES"
            " (%s, 'inspection-daily', 'equipment-daily', 'g-chen', %s, %s, %s, false,"
            " '0 minutes', %s, %s) RETURNING id",
            (SITE, start, start + timedelta(minutes=15), start + timedelta(hours=1), status,
             days < 0)).fetchone()
        assert row is not None
        for seq, checkpoint in enumerate(("ecp-pump-1", "ecp-pump-2"), 1):
            scanned = days < 0 and seq == 1
            conn.execute(
                "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, equipment,"
                " due_at, window_start, window_end, match_from, match_until, scan_id, scan_time)"
                " VALUES (%s, %s, %s, %s, true, %s, %s, %s, %s, %s, %s, %s)",
                (row["id"], seq, SITE, checkpoint, start, start, start + timedelta(hours=1),
                 start, start + timedelta(hours=1), uuid.uuid4() if scanned else None,
                 start if scanned else None))
    conn.execute("INSERT INTO inspection_findings (site_id, checkpoint_id, device_id, guard_id,"
                 " scan_id, scan_time, problems, created_at) VALUES (%s, 'ecp-pump-1',"
                 " 'pump-1', 'g-chen', %s, %s, %s, %s)",
                 (SITE, uuid.uuid4(), now - timedelta(days=1),
                  Jsonb([{"item": "seal", "reason": "dripping"}]), now - timedelta(days=1)))
    handover.write_due(conn, now)  # the sheet of the last shift change


# g-li's day patrol two hours ago, as the patrol engine classified it.
DAY_VISITS = (("cp-lobby-a", "on_time", 0), ("cp-lobby-b", "out_of_order", 16),
              ("cp-lobby-c", "late", 12), ("cp-roof-a", "missed", None))


def day_run(conn: psycopg.Connection[Any], now: datetime) -> None:
    """A finished day-patrol run of g-li's with a visit of each classification, and a scan
    at a checkpoint on none of g-li's runs."""
    start = now - timedelta(hours=2)
    run = conn.execute("INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id,"
                       " planned_start, start_deadline, planned_end, ordered, min_duration,"
                       " status, flags, final) VALUES (%s, 'day-patrol', 'day-patrol', 'g-li',"
                       " %s, %s, %s, true, '20 minutes', 'incomplete', '{out_of_order}', true)"
                       " RETURNING id", (SITE, start, start + timedelta(minutes=5),
                                         start + timedelta(minutes=35))).fetchone()
    assert run is not None
    for seq, (checkpoint, status, scanned) in enumerate(DAY_VISITS, 1):
        due = start + timedelta(minutes=10 * (seq - 1))
        timing = "on_time" if status == "out_of_order" else status
        conn.execute(
            "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, due_at,"
            " window_start, window_end, match_from, match_until, scan_id, scan_time, timing,"
            " status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run["id"], seq, SITE, checkpoint, due, due - timedelta(minutes=5),
             due + timedelta(minutes=5), due - timedelta(minutes=15), due + timedelta(minutes=15),
             None if scanned is None else uuid.uuid4(),
             None if scanned is None else start + timedelta(minutes=scanned), timing, status))
    conn.execute("INSERT INTO scan_checks (scan_id, scan_time, site_id, guard_id, tag,"
                 " checkpoint_id, disposition, checked_at) VALUES (%s, %s, %s, 'g-li',"
                 " 'NFC-RS-0005', 'cp-carpark-b1', 'unscheduled', %s)",
                 (uuid.uuid4(), start + timedelta(minutes=40), SITE, now))


def add_alarm(conn: psycopg.Connection[Any], device: str, rule: str, severity: str,
              message: str, *, raised: datetime, metric: str | None = None,
              value: float | None = None) -> int:
    """An active alarm (as the rules engine would raise it); its id."""
    row = conn.execute("INSERT INTO alarms (site_id, device_id, rule_id, severity,"
                       " peak_severity, message, metric, first_value, last_value, raised_at,"
                       " last_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                       " RETURNING id", (SITE, device, rule, severity, severity, message,
                                         metric, value, value, raised, raised)).fetchone()
    assert row is not None
    return int(row["id"])
