"""Records for KPI tests, written by SQL INSERTs (the APIs that create them are elsewhere).

No tests here: the KPI test files import these builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

SITE = "berlin"
TZ = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def make_site(conn: psycopg.Connection[Any], site: str = SITE, tz: str = TZ,
              devices: dict[str, str] | None = None) -> None:
    """A site in `tz` with the given devices (id → type)."""
    conn.execute("INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s)", (site, site, tz))
    for dev, typ in (devices or {}).items():
        conn.execute("INSERT INTO device_types (id, name) VALUES (%s, %s)"
                     " ON CONFLICT DO NOTHING", (typ, typ))
        conn.execute("INSERT INTO devices (site_id, id, type_id, name) VALUES (%s, %s, %s, %s)",
                     (site, dev, typ, dev))


def work_order(conn: psycopg.Connection[Any], *, opened: datetime, site: str = SITE,
               respond_by: datetime | None = None, resolve_by: datetime | None = None,
               state: str = "open", category: str = "公区维修", source: str = "manual",
               severity: str = "major", device: str | None = None, rule: str | None = None,
               repeat_of: int | None = None, **stamps: datetime | None) -> int:
    """A work order; `stamps` are acknowledged_at, resolved_at, closed_at, cancelled_at."""
    cols = {"site_id": site, "source": source, "severity": severity, "priority": 2,
            "title": "t", "opened_at": opened,
            "respond_by": respond_by or opened + timedelta(minutes=30),
            "resolve_by": resolve_by or opened + timedelta(hours=24), "state": state,
            "category": category, "device_id": device, "rule_id": rule,
            "repeat_of": repeat_of, "updated_at": opened,
            "urgency": "零修" if source == "manual" else None, **stamps}
    query = sql.SQL("INSERT INTO work_orders ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    row = conn.execute(query, list(cols.values())).fetchone()
    assert row is not None
    return int(row["id"])


def fault(conn: psycopg.Connection[Any], wo_id: int, at: datetime, ref: str) -> None:
    """A fault (alarm) the work order answers."""
    conn.execute("INSERT INTO work_order_refs (source, source_ref, work_order_id, at)"
                 " VALUES ('alarm', %s, %s, %s)", (ref, wo_id, at))


def complaint(conn: psycopg.Connection[Any], number: str, *, opened: datetime,
              answer_by: datetime, site: str = SITE, state: str = "open",
              resolution: str | None = None, answered_at: datetime | None = None,
              closed_at: datetime | None = None) -> int:
    row = conn.execute(
        "INSERT INTO complaints (site_id, number, grade, category, channel, description,"
        " state, opened_at, answer_by, answered_at, closed_at, resolution, created_by,"
        " updated_at) VALUES (%s, %s, '一般', '环境管理', 'phone', 'd', %s, %s, %s, %s, %s,"
        " %s, 'test', %s) RETURNING id",
        (site, number, state, opened, answer_by, answered_at, closed_at, resolution,
         opened)).fetchone()
    assert row is not None
    return int(row["id"])


def follow_up(conn: psycopg.Connection[Any], *, at: datetime, outcome: str = "reached",
              satisfaction: int | None = 5, work_order: int | None = None,
              complaint_id: int | None = None, site: str = SITE) -> None:
    conn.execute(
        "INSERT INTO follow_ups (site_id, work_order_id, complaint_id, at, actor, channel,"
        " outcome, satisfaction) VALUES (%s, %s, %s, %s, 'desk', 'phone', %s, %s)",
        (site, work_order, complaint_id, at, outcome,
         satisfaction if outcome == "reached" else None))


def run(conn: psycopg.Connection[Any], *, route: str, start: datetime,
        visits: list[tuple[str, bool]], guard: str | None = "g1", post: str | None = None,
        schedule: str | None = None, site: str = SITE) -> int:
    """A patrol run with visits given as (timing, equipment); timing 'out_of_order:<t>' sets
    the status out_of_order with timing t."""
    row = conn.execute(
        "INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id, post, planned_start,"
        " start_deadline, planned_end, ordered, min_duration, status, final)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, '0', 'complete', true) RETURNING id",
        (site, schedule or route, route, guard, post, start, start + timedelta(minutes=5),
         start + timedelta(hours=1))).fetchone()
    assert row is not None
    run_id = int(row["id"])
    for seq, (timing, equipment) in enumerate(visits, 1):
        status = timing
        if timing.startswith("out_of_order:"):
            status, timing = "out_of_order", timing.split(":", 1)[1]
        due = start + timedelta(minutes=10 * seq)
        conn.execute(
            "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, equipment, due_at,"
            " window_start, window_end, match_from, match_until, timing, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, seq, site, f"cp{seq}", equipment, due, due - timedelta(minutes=5),
             due + timedelta(minutes=5), due - timedelta(minutes=15),
             due + timedelta(minutes=15), timing, status))
    return run_id
