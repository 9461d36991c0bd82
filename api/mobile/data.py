"""What the phone page shows a guard: their runs around now with each visit's window, the
site's checkpoints (to answer a scan offline), and their recent scans as the API judged them.

Every query names the site and the guard; times go out as epoch milliseconds (the page's
clock arithmetic and the scan payload's `ts` are both in them).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

# Runs shown: those that ended up to BEFORE ago and those that start within AHEAD.
BEFORE = timedelta(hours=6)
AHEAD = timedelta(hours=18)
MAX_RUNS = 30
MAX_CHECKPOINTS = 2000
MAX_SCANS = 50
RECENT = timedelta(hours=24)


def ms(at: datetime | None) -> int | None:
    """A time as epoch milliseconds (None stays None)."""
    return None if at is None else int(at.timestamp() * 1000)


def _rows(conn: psycopg.Connection[Any], query: str, params: Any) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ms(v) if isinstance(v, datetime) else v for k, v in row.items()}


def guard(conn: psycopg.Connection[Any], site_id: str, guard_id: str) -> dict[str, Any] | None:
    """The guard's registry entry (name, post) at the site, if it is there."""
    found = _rows(conn, "SELECT id, name, post FROM guards WHERE site_id = %s AND id = %s",
                  (site_id, guard_id))
    return found[0] if found else None


def runs(conn: psycopg.Connection[Any], site_id: str, guard_id: str, *, now: datetime
         ) -> list[dict[str, Any]]:
    """The guard's runs (their own, or their post's) around now, each with its visits."""
    found = _rows(
        conn,
        "SELECT r.id, r.route_id, coalesce(rt.name, r.route_id) AS route_name, r.planned_start,"
        " r.start_deadline, r.planned_end, r.status, r.ordered, r.final FROM patrol_runs r"
        " LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id"
        " WHERE r.site_id = %(site)s AND (r.guard_id = %(guard)s OR (r.guard_id IS NULL"
        "   AND r.post IS NOT NULL AND r.post = (SELECT post FROM guards"
        "   WHERE site_id = %(site)s AND id = %(guard)s)))"
        " AND r.planned_end >= %(from)s AND r.planned_start <= %(to)s"
        " ORDER BY r.planned_start, r.id LIMIT %(limit)s",
        {"site": site_id, "guard": guard_id, "from": now - BEFORE, "to": now + AHEAD,
         "limit": MAX_RUNS})
    if not found:
        return []
    visits = _rows(
        conn,
        "SELECT v.run_id, v.seq, v.checkpoint_id, c.name AS checkpoint_name, c.tag,"
        " v.equipment, v.due_at, v.window_start, v.window_end, v.match_from, v.match_until,"
        " v.scan_id, v.scan_time, v.timing, v.status FROM patrol_visits v"
        " LEFT JOIN checkpoints c ON c.site_id = v.site_id AND c.id = v.checkpoint_id"
        " WHERE v.site_id = %s AND v.run_id = ANY(%s) ORDER BY v.run_id, v.seq",
        (site_id, [r["id"] for r in found]))
    by_run: dict[int, list[dict[str, Any]]] = {}
    for v in visits:
        v["scan_id"] = str(v["scan_id"]) if v["scan_id"] else None
        by_run.setdefault(v.pop("run_id"), []).append(_times(v))
    return [{**_times(r), "visits": by_run.get(r["id"], [])} for r in found]


def checkpoints(conn: psycopg.Connection[Any], site_id: str) -> list[dict[str, Any]]:
    """The site's checkpoints with their tags and checklists (what the phone matches a tag to)."""
    return _rows(conn, "SELECT id, name, tag, kind, checklist FROM checkpoints"
                       " WHERE site_id = %s ORDER BY id LIMIT %s", (site_id, MAX_CHECKPOINTS))


def recent_scans(conn: psycopg.Connection[Any], site_id: str, guard_id: str, *,
                 now: datetime) -> list[dict[str, Any]]:
    """The guard's scans of the last day as the API judged them (null: not checked yet)."""
    found = _rows(
        conn,
        "SELECT s.scan_id, s.time, s.tag, c.name AS checkpoint_name, s.result,"
        " k.disposition, k.run_id, k.seq, v.timing, f.work_order_id FROM scans s"
        " LEFT JOIN checkpoints c ON c.site_id = s.site_id AND c.id = s.checkpoint_id"
        " LEFT JOIN scan_checks k ON k.scan_id = s.scan_id"
        " LEFT JOIN patrol_visits v ON v.run_id = k.run_id AND v.seq = k.seq"
        " LEFT JOIN inspection_findings f ON f.scan_id = s.scan_id"
        " WHERE s.site_id = %s AND s.guard_id = %s AND s.time >= %s"
        " ORDER BY s.time DESC, s.scan_id LIMIT %s",
        (site_id, guard_id, now - RECENT, MAX_SCANS))
    return [{**_times(r), "scan_id": str(r["scan_id"])} for r in found]
