"""Routes and schedules in the database: validated upserts, reads and deletes.

Changing a route or schedule replaces the runs that have not started yet; runs already
walked (or being walked) keep the definition they were planned with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from caretaker import errors
from caretaker.paging import Where, fetch_page
from rules.patrol.model import (
    PatrolConfigError,
    Route,
    Schedule,
    check_timezone,
    route_from_dict,
    route_to_dict,
    schedule_from_dict,
    schedule_to_dict,
)
from rules.patrol.schedule import effective_instant

# Connections with dict rows (caretaker.db and the test fixtures make them so).
Conn = psycopg.Connection[Any]


class NotFound(errors.NotFound):
    """The route, schedule or site asked for does not exist (in the caller's scope)."""


class InUse(errors.Conflict):
    """The thing cannot be deleted: something still refers to it."""


@dataclass(frozen=True)
class Stored:
    """A stored route or schedule: its site, definition dict and timestamps."""

    site_id: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {"site_id": self.site_id, **self.definition,
                "created_at": self.created_at, "updated_at": self.updated_at}


def site_timezone(conn: Conn, site_id: str) -> str:
    """The site's IANA time zone; NotFound if the site does not exist."""
    row = conn.execute("SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    if row is None:
        raise NotFound(f"site {site_id!r} not found")
    tz = str(row["timezone"])
    check_timezone(tz)
    return tz


def _check_route_refs(conn: Conn, site_id: str, route: Route) -> None:
    ids = [s.checkpoint for s in route.steps]
    rows = conn.execute("SELECT id FROM checkpoints WHERE site_id = %s AND id = ANY(%s)",
                        (site_id, ids)).fetchall()
    known = {r["id"] for r in rows}
    missing = [c for c in ids if c not in known]
    if missing:
        raise PatrolConfigError(
            f"route {route.id}: unknown checkpoint(s) at site {site_id}: {', '.join(missing)}")


def _replan_future(conn: Conn, site_id: str, schedule_ids: list[str],
                   now: datetime) -> None:
    """Drop runs not yet started and let the clock plan them again from `now`."""
    conn.execute(
        "DELETE FROM patrol_runs r WHERE r.site_id = %s AND r.schedule_id = ANY(%s)"
        " AND r.planned_start >= %s AND r.status = 'scheduled'"
        " AND NOT EXISTS (SELECT 1 FROM inspection_gaps g WHERE g.run_id = r.id)",
        (site_id, schedule_ids, now))
    conn.execute(
        "UPDATE schedules SET materialized_until = LEAST(materialized_until, %s)"
        " WHERE site_id = %s AND id = ANY(%s)", (now, site_id, schedule_ids))


def upsert_route(conn: Conn, site_id: str, route: Route, *, now: datetime) -> bool:
    """Create or replace a route; True if anything changed."""
    site_timezone(conn, site_id)
    _check_route_refs(conn, site_id, route)
    definition = route_to_dict(route)
    row = conn.execute(
        "INSERT INTO routes (site_id, id, name, definition, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id, id) DO UPDATE SET name = EXCLUDED.name,"
        "   definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at"
        " WHERE routes.definition IS DISTINCT FROM EXCLUDED.definition"
        " RETURNING (xmax = 0) AS inserted",
        (site_id, route.id, route.name, Jsonb(definition), now, now)).fetchone()
    if row is None:
        return False
    if not row["inserted"]:
        users = [r["id"] for r in conn.execute(
            "SELECT id FROM schedules WHERE site_id = %s AND route_id = %s",
            (site_id, route.id)).fetchall()]
        if users:
            _replan_future(conn, site_id, users, now)
    return True


def upsert_schedule(conn: Conn, site_id: str, sched: Schedule, *, now: datetime) -> bool:
    """Create or replace a schedule; True if anything changed.

    It takes effect at its `effective_from` if given, else when it is first loaded (`now`):
    stored as effective_at and kept by later loads, so reloading a file never moves it. When
    a load moves it earlier, the clock plans the runs between (history, e.g. a backfill).
    """
    tz = site_timezone(conn, site_id)
    if conn.execute("SELECT 1 FROM routes WHERE site_id = %s AND id = %s",
                    (site_id, sched.route)).fetchone() is None:
        raise PatrolConfigError(f"schedule {sched.id}: unknown route {sched.route!r}")
    if sched.guard and conn.execute("SELECT 1 FROM guards WHERE site_id = %s AND id = %s",
                                    (site_id, sched.guard)).fetchone() is None:
        raise PatrolConfigError(f"schedule {sched.id}: unknown guard {sched.guard!r}")
    definition = schedule_to_dict(sched)
    explicit = effective_instant(sched, ZoneInfo(tz))
    before = conn.execute("SELECT effective_at FROM schedules WHERE site_id = %s AND id = %s"
                          " FOR UPDATE", (site_id, sched.id)).fetchone()
    row = conn.execute(
        "INSERT INTO schedules (site_id, id, route_id, guard_id, post, definition, enabled,"
        "   effective_at, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id, id) DO UPDATE SET route_id = EXCLUDED.route_id,"
        "   guard_id = EXCLUDED.guard_id, post = EXCLUDED.post,"
        "   definition = EXCLUDED.definition, enabled = EXCLUDED.enabled,"
        "   effective_at = COALESCE(%s, schedules.effective_at),"
        "   updated_at = EXCLUDED.updated_at"
        " WHERE schedules.definition IS DISTINCT FROM EXCLUDED.definition"
        " RETURNING (xmax = 0) AS inserted, effective_at",
        (site_id, sched.id, sched.route, sched.guard, sched.post, Jsonb(definition),
         sched.enabled, explicit or now, now, now, explicit)).fetchone()
    if row is None:
        return False
    if not row["inserted"]:
        _replan_future(conn, site_id, [sched.id], now)
        if before is not None and row["effective_at"] < before["effective_at"]:
            conn.execute("UPDATE schedules SET materialized_until = NULL"
                         " WHERE site_id = %s AND id = %s", (site_id, sched.id))
    return True


def effective_at(conn: Conn, site_id: str, schedule_id: str) -> datetime | None:
    """The instant a stored schedule takes effect (None if it does not exist)."""
    row = conn.execute("SELECT effective_at FROM schedules WHERE site_id = %s AND id = %s",
                       (site_id, schedule_id)).fetchone()
    return row["effective_at"] if row else None


def _stored(row: dict[str, Any]) -> Stored:
    return Stored(row["site_id"], row["definition"], row["created_at"], row["updated_at"])


def list_routes(conn: Conn, *, site: str | None, limit: int, offset: int
                ) -> tuple[list[Stored], int]:
    """Routes (of one site, or all), by site and id, with the total count."""
    where = Where()
    where.equals("site_id", site)
    return _stored_page(conn, "routes", where, limit=limit, offset=offset)


def get_route(conn: Conn, site_id: str, route_id: str) -> Stored:
    """One route; NotFound if absent."""
    row = conn.execute("SELECT site_id, definition, created_at, updated_at FROM routes"
                       " WHERE site_id = %s AND id = %s", (site_id, route_id)).fetchone()
    if row is None:
        raise NotFound(f"route {route_id!r} not found")
    return _stored(row)


def delete_route(conn: Conn, site_id: str, route_id: str) -> None:
    """Delete a route no schedule uses; InUse otherwise, NotFound if absent."""
    get_route(conn, site_id, route_id)
    users = [r["id"] for r in conn.execute(
        "SELECT id FROM schedules WHERE site_id = %s AND route_id = %s",
        (site_id, route_id)).fetchall()]
    if users:
        raise InUse(f"route {route_id!r} is used by schedule(s) {', '.join(users)}")
    conn.execute("DELETE FROM routes WHERE site_id = %s AND id = %s", (site_id, route_id))


def list_schedules(conn: Conn, *, site: str | None, route: str | None,
                   guard: str | None, limit: int, offset: int) -> tuple[list[Stored], int]:
    """Schedules matching the filters, by site and id, with the total count."""
    where = Where()
    where.equals_all({"site_id": site, "route_id": route, "guard_id": guard})
    return _stored_page(conn, "schedules", where, limit=limit, offset=offset)


def _stored_page(conn: Conn, table: str, where: Where, *, limit: int, offset: int
                 ) -> tuple[list[Stored], int]:
    """One page of stored routes or schedules, by site and id, and how many match."""
    rows, total = fetch_page(conn, table, where, select="site_id, definition, created_at,"
                             " updated_at", order="site_id, id", limit=limit, offset=offset)
    return [_stored(r) for r in rows], total


def get_schedule(conn: Conn, site_id: str, schedule_id: str) -> Stored:
    """One schedule; NotFound if absent."""
    row = conn.execute("SELECT site_id, definition, created_at, updated_at FROM schedules"
                       " WHERE site_id = %s AND id = %s", (site_id, schedule_id)).fetchone()
    if row is None:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return _stored(row)


def delete_schedule(conn: Conn, site_id: str, schedule_id: str, *,
                    now: datetime) -> None:
    """Delete a schedule and its runs not yet started; walked runs stay as history."""
    get_schedule(conn, site_id, schedule_id)
    _replan_future(conn, site_id, [schedule_id], now)
    conn.execute("DELETE FROM schedules WHERE site_id = %s AND id = %s",
                 (site_id, schedule_id))


def load_route(definition: dict[str, Any]) -> Route:
    """The Route value of a stored definition."""
    return route_from_dict(definition)


def load_schedule(definition: dict[str, Any]) -> Schedule:
    """The Schedule value of a stored definition."""
    return schedule_from_dict(definition)
