"""The example site with a backfilled history for the dashboards' queries: telemetry of every
metric, device status, alarms, work orders with their faults, complaints, follow-up visits,
patrol runs with visits and gaps; straight inserts with a fixed seed (as bench/report_bench.py)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import psycopg

from caretaker.site_config import example_document
from stack.app import load_site

SITE = "riverside"
CATEGORIES = ("公区维修", "居家维修", "整改", "设备", "其他")
SOURCES = ("alarm", "inspection", "patrol", "manual", "complaint")


def example_site(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    """Load the packaged example site (Riverside Gardens); its parsed document."""
    doc: dict[str, Any] = example_document()
    load_site(conn, doc, now=now - timedelta(days=60))
    conn.commit()
    return doc


def telemetry(conn: psycopg.Connection[Any], doc: dict[str, Any], start: datetime,
              end: datetime, step: timedelta) -> int:
    """COPY one reading of every metric of every device each `step`; rows written."""
    metrics = {t["id"]: list(t.get("metrics", {})) for t in doc["device_types"]}
    n = 0
    with conn.cursor().copy("COPY telemetry (time, site_id, device_id, metric, value)"
                            " FROM STDIN") as copy:
        at, k = start, 0
        while at < end:
            stamp = at.isoformat()
            for d in doc["devices"]:
                for m in metrics[d["type"]]:
                    copy.write(f"{stamp}\t{SITE}\t{d['id']}\t{m}\t{(k % 97) / 10}\n")
                    n += 1
            at += step
            k += 1
    return n


def records(conn: psycopg.Connection[Any], doc: dict[str, Any], start: datetime,
            end: datetime, *, tickets: int = 60, seed: int = 1) -> None:
    """Work orders (some still open), faults, alarms (some active), outages, complaints,
    follow-ups, patrol runs with visits and gaps in [start, end), with a fixed seed."""
    rnd = random.Random(seed)
    span = (end - start).total_seconds()
    devices = [d["id"] for d in doc["devices"]]
    for i in range(tickets):
        opened = start + timedelta(seconds=rnd.uniform(0, span))
        done = rnd.random() < 0.7 and opened + timedelta(hours=2) < end
        resolved = min(opened + timedelta(hours=rnd.uniform(0.5, 30)), end) if done else None
        device = rnd.choice(devices)
        source = rnd.choice(SOURCES)
        severity = rnd.choice(("major", "minor", "critical"))
        row = conn.execute(
            "INSERT INTO work_orders (site_id, device_id, source, severity, priority, title,"
            " state, opened_at, respond_by, resolve_by, acknowledged_at, resolved_at,"
            " category, repeat_count, updated_at, urgency) VALUES (%s, %s, %s, %s, 2, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s = 'manual' THEN '零修' END)"
            " RETURNING id",
            (SITE, device, source, severity, f"fault {i}", "resolved" if done else "open",
             opened, opened + timedelta(minutes=30),
             opened + timedelta(hours=rnd.choice((4, 24, 72))),
             opened + timedelta(minutes=rnd.uniform(5, 60)) if done or i % 2 else None,
             resolved, rnd.choice(CATEGORIES), rnd.choice((0, 0, 1)), opened,
             source)).fetchone()
        assert row is not None
        wo = row[0] if not isinstance(row, dict) else row["id"]
        if source in ("alarm", "inspection"):
            for k in range(rnd.choice((1, 1, 2))):
                conn.execute("INSERT INTO work_order_refs (source, source_ref, work_order_id,"
                             " at) VALUES (%s, %s, %s, %s)",
                             (source, f"{i}-{k}", wo, opened + timedelta(minutes=10 * k)))
        if done and resolved is not None and rnd.random() < 0.6:
            reached = rnd.random() < 0.8
            conn.execute(
                "INSERT INTO follow_ups (site_id, work_order_id, at, actor, channel, outcome,"
                " satisfaction) VALUES (%s, %s, %s, 'desk', 'phone', %s, %s)",
                (SITE, wo, min(resolved + timedelta(hours=2), end),
                 "reached" if reached else "unreachable",
                 rnd.choice((3, 4, 5, 5)) if reached else None))
        active = i % 7 == 0
        conn.execute(
            "INSERT INTO alarms (site_id, device_id, rule_id, severity, message, metric,"
            " first_value, raised_at, last_at, state, cleared_at, work_order_id) VALUES"
            " (%s, %s, %s, %s, 'high', 'value', 9.9, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (SITE, device, f"rule-{i % 5}", severity, opened, opened,
             "active" if active else "cleared",
             None if active else opened + timedelta(hours=1), wo))
        if rnd.random() < 0.3:
            back = opened + timedelta(hours=2)
            conn.execute("INSERT INTO device_status (time, site_id, device_id, status)"
                         " VALUES (%s, %s, %s, 'offline') ON CONFLICT DO NOTHING",
                         (opened, SITE, device))
            if back < end and i % 3:
                conn.execute("INSERT INTO device_status (time, site_id, device_id, status)"
                             " VALUES (%s, %s, %s, 'online') ON CONFLICT DO NOTHING",
                             (back, SITE, device))
    conn.execute("UPDATE devices SET online = NOT EXISTS (SELECT 1 FROM device_status s"
                 " WHERE s.device_id = devices.id AND s.status = 'offline' AND NOT EXISTS ("
                 "   SELECT 1 FROM device_status o WHERE o.device_id = s.device_id"
                 "      AND o.status = 'online' AND o.time > s.time)), last_seen = %s"
                 " WHERE site_id = %s", (end, SITE))
    for i in range(8):
        opened = start + timedelta(seconds=rnd.uniform(0, span))
        closed = i % 3 != 0
        row = conn.execute(
            "INSERT INTO complaints (site_id, number, grade, category, channel,"
            " complainant_name, description, state, opened_at, answer_by, answered_at,"
            " closed_at, resolution, created_by, updated_at) VALUES (%s, %s, '一般', '设备管理',"
            " 'phone', '张三', 'noise', %s, %s, %s, %s, %s, %s, 'desk', %s) RETURNING id",
            (SITE, f"TS-2026-{i + 1:04d}", "closed" if closed else "open", opened,
             opened + timedelta(hours=12), opened + timedelta(hours=6) if closed else None,
             opened + timedelta(hours=8) if closed else None, "handled" if closed else None,
             opened)).fetchone()
        assert row is not None
        if closed:
            conn.execute(
                "INSERT INTO follow_ups (site_id, complaint_id, at, actor, channel, outcome,"
                " satisfaction) VALUES (%s, %s, %s, 'desk', 'phone', 'reached', 5)",
                (SITE, row[0] if not isinstance(row, dict) else row["id"],
                 opened + timedelta(hours=9)))
    guards = [g["id"] for g in doc["guards"]]
    equipment = {c["id"] for c in doc["checkpoints"] if c.get("kind") == "equipment"}
    for r, route in enumerate(x for x in doc["routes"] if x.get("steps")):
        points = [s["checkpoint"] for s in route["steps"]]
        at = start
        while at + timedelta(hours=1) < end:
            row = conn.execute(
                "INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id,"
                " planned_start, start_deadline, planned_end, ordered, min_duration, status,"
                " final) VALUES (%s, %s, %s, %s, %s, %s, %s, false, '0', %s, true)"
                " RETURNING id", (SITE, f"s-{route['id']}", route["id"], guards[r % len(guards)],
                                  at, at + timedelta(minutes=10), at + timedelta(hours=1),
                                  rnd.choice(("complete", "complete", "incomplete")))
            ).fetchone()
            assert row is not None
            run = row[0] if not isinstance(row, dict) else row["id"]
            for seq, point in enumerate(points):
                timing = rnd.choice(("on_time", "on_time", "on_time", "early", "late",
                                     "missed"))
                due = at + timedelta(minutes=5 * seq)
                conn.execute(
                    "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, equipment,"
                    " due_at, window_start, window_end, match_from, match_until, timing,"
                    " status, scan_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " %s, %s)",
                    (run, seq, SITE, point, point in equipment, due,
                     due - timedelta(minutes=5), due + timedelta(minutes=5),
                     due - timedelta(minutes=10), due + timedelta(minutes=10), timing, timing,
                     None if timing == "missed" else due))
                if timing == "missed":
                    conn.execute(
                        "INSERT INTO inspection_gaps (site_id, route_id, schedule_id, run_id,"
                        " seq, checkpoint_id, guard_id, kind, window_start, window_end,"
                        " detected_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (SITE, route["id"], f"s-{route['id']}", run, seq, point,
                         guards[r % len(guards)],
                         "overdue_inspection" if point in equipment else "missed_checkpoint",
                         due - timedelta(minutes=5), due + timedelta(minutes=5),
                         due + timedelta(minutes=6)))
            at += timedelta(hours=4)
    conn.commit()
