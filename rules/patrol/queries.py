"""Read side of patrol for the API: runs with their visits, gaps, scans, a site's status now.

Every function takes `scope` (the token's site, or None) and `guard` (a guard token's own
guard, or None) and puts both into the WHERE clause.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from caretaker.paging import Key, KeysetPage, Where, fetch_keyset, fetch_page
from rules.patrol.schedule import next_occurrence
from rules.patrol.store import Conn, NotFound, load_schedule

_RUN_COLUMNS = (
    "r.id, r.site_id, r.schedule_id, r.route_id, rt.name AS route_name, r.guard_id, r.post,"
    " r.planned_start, r.start_deadline, r.planned_end, r.status, r.flags, r.started_at,"
    " r.finished_at, r.final, r.ordered,"
    " (r.planned_start AT TIME ZONE st.timezone)::date AS local_date,"
    " (SELECT count(*) FROM patrol_visits v WHERE v.run_id = r.id) AS visits_total,"
    " (SELECT count(*) FROM patrol_visits v WHERE v.run_id = r.id"
    "   AND v.scan_id IS NOT NULL) AS visits_done,"
    " (SELECT count(*) FROM inspection_gaps g WHERE g.run_id = r.id"
    "   AND g.status = 'open') AS open_gaps"
)
_RUN_SOURCE = (
    "patrol_runs r JOIN sites st ON st.id = r.site_id"
    " LEFT JOIN routes rt ON rt.site_id = r.site_id AND rt.id = r.route_id"
)
_RUN_FROM = " FROM " + _RUN_SOURCE


def list_runs(conn: Conn, *, scope: str | None, guard: str | None, site: str | None,
              route: str | None, schedule: str | None, guard_id: str | None,
              day: date | None, status: str | None, since: datetime | None,
              until: datetime | None, limit: int, offset: int
              ) -> tuple[list[dict[str, Any]], int]:
    """Runs matching the filters (day: the site's local date), newest first, and the total."""
    where = _scoped(scope, guard, "r")
    where.equals_all({"r.site_id": site, "r.route_id": route, "r.schedule_id": schedule,
                      "r.guard_id": guard_id, "r.status": status})
    if day is not None:
        where.add("(r.planned_start AT TIME ZONE st.timezone)::date = %s", day)
    where.within("r.planned_start", since, until)
    return fetch_page(conn, "patrol_runs", where, select=_RUN_COLUMNS, source=_RUN_SOURCE,
                      order="r.planned_start DESC, r.id DESC", limit=limit, offset=offset)


def get_run(conn: Conn, run_id: int, *, scope: str | None, guard: str | None
            ) -> dict[str, Any]:
    """One run with every visit (classification, scan) and its gaps; NotFound outside scope."""
    run: dict[str, Any] | None = conn.execute(
        "SELECT " + _RUN_COLUMNS + _RUN_FROM + " WHERE r.id = %(id)s"
        " AND (%(scope)s::text IS NULL OR r.site_id = %(scope)s)"
        " AND (%(own)s::text IS NULL OR r.guard_id = %(own)s)",
        {"id": run_id, "scope": scope, "own": guard}).fetchone()
    if run is None:
        raise NotFound(f"run {run_id} not found")
    run["visits"] = conn.execute(
        "SELECT v.seq, v.checkpoint_id, c.name AS checkpoint_name, v.equipment, v.due_at,"
        "   v.window_start, v.window_end, v.scan_id, v.scan_time, v.timing, v.status"
        " FROM patrol_visits v LEFT JOIN checkpoints c"
        "   ON c.site_id = v.site_id AND c.id = v.checkpoint_id"
        " WHERE v.run_id = %s ORDER BY v.seq", (run_id,)).fetchall()
    run["gaps"] = conn.execute("SELECT * FROM inspection_gaps WHERE run_id = %s ORDER BY id",
                               (run_id,)).fetchall()
    return run


def list_gaps(conn: Conn, *, scope: str | None, guard: str | None, site: str | None,
              route: str | None, guard_id: str | None, kind: str | None,
              status: str | None, acknowledged: bool | None, run: int | None,
              since: datetime | None, until: datetime | None, limit: int, offset: int
              ) -> tuple[list[dict[str, Any]], int]:
    """Gaps matching the filters (since/until: detected_at), newest first, and the total."""
    where = _scoped(scope, guard, "g")
    where.equals_all({"g.site_id": site, "g.route_id": route, "g.guard_id": guard_id,
                      "g.kind": kind, "g.status": status, "g.run_id": run})
    if acknowledged is not None:
        where.add("(g.acknowledged_at IS NOT NULL) = %s", acknowledged)
    where.within("g.detected_at", since, until)
    return fetch_page(
        conn, "inspection_gaps", where, select="g.*, c.name AS checkpoint_name",
        source="inspection_gaps g LEFT JOIN checkpoints c"
               " ON c.site_id = g.site_id AND c.id = g.checkpoint_id",
        order="g.detected_at DESC, g.id DESC", limit=limit, offset=offset)


def acknowledge_gap(conn: Conn, gap_id: int, *, scope: str | None, actor: str,
                    note: str | None, now: datetime) -> dict[str, Any] | None:
    """Mark a gap acknowledged with a note; None if it was already; NotFound outside scope."""
    found = conn.execute("SELECT id, acknowledged_at FROM inspection_gaps WHERE id = %s"
                         " AND (%s::text IS NULL OR site_id = %s) FOR UPDATE",
                         (gap_id, scope, scope)).fetchone()
    if found is None:
        raise NotFound(f"gap {gap_id} not found")
    if found["acknowledged_at"] is not None:
        return None
    # an open gap leaves the open list; a resolved one stays resolved
    row: dict[str, Any] | None = conn.execute(
        "UPDATE inspection_gaps SET acknowledged_at = %s, acknowledged_by = %s, note = %s,"
        " status = CASE WHEN status = 'open' THEN 'acknowledged' ELSE status END"
        " WHERE id = %s RETURNING *", (now, actor, note, gap_id)).fetchone()
    return row


SCAN_KEYS = (Key("s.time", "time", descending=True), Key("s.scan_id", "scan_id"))


def list_scans(conn: Conn, *, scope: str | None, guard: str | None, site: str | None,
               guard_id: str | None, disposition: str | None, tag: str | None,
               since: datetime | None, until: datetime | None, limit: int, offset: int,
               result: str | None = None, cursor: str | None = None) -> KeysetPage:
    """Stored scans with what the patrol engine made of them (null: not yet checked) and the
    ticket an abnormal one opened: one page after `cursor` (or from `offset`), newest first,
    the total exact up to paging.COUNT_CAP (scans is a hypertable)."""
    where = _scoped(scope, guard, "s")
    where.equals_all({"s.site_id": site, "s.guard_id": guard_id, "k.disposition": disposition,
                      "s.tag": tag, "s.result": result})
    where.within("s.time", since, until)
    return fetch_keyset(
        conn, "scans", where,
        select="s.scan_id, s.time, s.site_id, s.guard_id, s.tag, s.checkpoint_id, s.result,"
               " s.readings, s.note, s.received_at, k.disposition, k.suspicious, k.run_id, k.seq,"
               " f.id AS finding_id, f.kind AS finding_kind, f.work_order_id",
        source="scans s LEFT JOIN scan_checks k ON k.scan_id = s.scan_id"
               " LEFT JOIN inspection_findings f ON f.scan_id = s.scan_id",
        keys=SCAN_KEYS, limit=limit, offset=offset, cursor=cursor)


def _scoped(scope: str | None, guard: str | None, alias: str) -> Where:
    """Conditions every patrol list starts with: the token's site, a guard token's guard."""
    where = Where()
    where.equals(f"{alias}.site_id", scope)
    where.equals(f"{alias}.guard_id", guard)
    return where


def patrol_status(conn: Conn, site_id: str, *, guard: str | None, now: datetime,
                  limit: int = 200, offset: int = 0) -> dict[str, Any]:
    """A site's patrol picture at `now`: runs under way, next run per schedule, and one page
    (`limit`, `offset`, newest first) of the open gaps with their total."""
    site = conn.execute("SELECT id, timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    if site is None:
        raise NotFound(f"site {site_id!r} not found")
    params = {"site": site_id, "own": guard, "now": now}
    own = " AND (%(own)s::text IS NULL OR r.guard_id = %(own)s)"
    in_progress = conn.execute(
        "SELECT " + _RUN_COLUMNS + _RUN_FROM + " WHERE r.site_id = %(site)s" + own
        + " AND r.planned_start - interval '30 minutes' <= %(now)s AND NOT r.final"
        " AND (r.status = 'in_progress' OR r.planned_start <= %(now)s)"
        " ORDER BY r.planned_start", params).fetchall()
    next_due = []
    for row in conn.execute(
            "SELECT s.id, s.route_id, rt.name AS route_name, s.guard_id, s.post, s.definition,"
            "   s.effective_at"
            " FROM schedules s JOIN routes rt ON rt.site_id = s.site_id AND rt.id = s.route_id"
            " WHERE s.site_id = %(site)s AND s.enabled"
            " AND (%(own)s::text IS NULL OR s.guard_id = %(own)s) ORDER BY s.id",
            params).fetchall():
        start = next_occurrence(load_schedule(row["definition"]), site["timezone"], now,
                                not_before=row["effective_at"])
        if start is None:
            continue
        run = conn.execute("SELECT id FROM patrol_runs WHERE site_id = %s AND schedule_id = %s"
                           " AND planned_start = %s", (site_id, row["id"], start)).fetchone()
        next_due.append({"schedule_id": row["id"], "route_id": row["route_id"],
                         "route_name": row["route_name"], "guard_id": row["guard_id"],
                         "post": row["post"], "planned_start": start,
                         "run_id": run["id"] if run else None})
    next_due.sort(key=lambda r: (r["planned_start"], r["schedule_id"]))
    open_gaps = conn.execute(
        "SELECT g.*, c.name AS checkpoint_name FROM inspection_gaps g"
        " LEFT JOIN checkpoints c ON c.site_id = g.site_id AND c.id = g.checkpoint_id"
        " WHERE g.site_id = %(site)s AND g.status = 'open'"
        " AND (%(own)s::text IS NULL OR g.guard_id = %(own)s)"
        " ORDER BY g.detected_at DESC, g.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": offset}).fetchall()
    open_count = conn.execute(
        "SELECT count(*) AS n FROM inspection_gaps g WHERE g.site_id = %(site)s"
        " AND g.status = 'open' AND (%(own)s::text IS NULL OR g.guard_id = %(own)s)",
        params).fetchone()
    unknown = conn.execute(
        "SELECT tag, count(*) AS scans, max(scan_time) AS last_seen FROM scan_checks"
        " WHERE site_id = %(site)s AND disposition = 'unknown_tag' AND scan_time >= %(since)s"
        " AND (%(own)s::text IS NULL OR guard_id = %(own)s)"
        " GROUP BY tag ORDER BY max(scan_time) DESC LIMIT 50",
        {**params, "since": now - timedelta(days=7)}).fetchall()
    return {"site_id": site_id, "timezone": site["timezone"], "now": now,
            "in_progress": in_progress, "next_due": next_due, "open_gaps": open_gaps,
            "open_gap_count": int(open_count["n"]) if open_count else 0,
            "limit": limit, "offset": offset,
            "unknown_tags": unknown}
