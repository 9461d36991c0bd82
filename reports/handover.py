"""The shift handover sheet (交接班): written from the data at each shift change, signed by
the outgoing and the incoming engineer, and the supervisor told when it stays unsigned."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from caretaker.errors import Conflict, Invalid, NotFound
from reports._sql import one, rows
from reports.periods import shift_changes
from reports.render import html_to_pdf, render_html
from reports.settings import site_settings
from tickets.notify import notify

log = logging.getLogger(__name__)

LIST_LIMIT = 50  # rows of each list on a sheet
SIDES = ("outgoing", "incoming")
COLUMNS = """id, site_id, shift_start, shift_end, language, content, created_at, sign_by,
    outgoing_by, outgoing_at, outgoing_note, incoming_by, incoming_at, incoming_note,
    unsigned_notified_at"""


def _jsonable(value: Any) -> Any:
    """Rows as JSON: times as ISO 8601 text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def gather(conn: psycopg.Connection[Any], site_id: str, start: datetime, end: datetime
           ) -> dict[str, Any]:
    """What a sheet lists for the shift [start, end): the plant's state at the change and
    what happened in the shift; the previous sheet's notes carried over."""
    p = {"site": site_id, "start": start, "end": end, "next_end": end + (end - start),
         "limit": LIST_LIMIT}
    previous = one(conn, """
        SELECT id, outgoing_by, outgoing_note, incoming_by, incoming_note FROM handovers
         WHERE site_id = %(site)s AND shift_end < %(end)s ORDER BY shift_end DESC LIMIT 1""", p)
    notes = [{"by": previous[f"{side}_by"], "side": side, "note": previous[f"{side}_note"]}
             for side in SIDES if previous and previous[f"{side}_note"]]
    content = {
        "devices_offline": rows(conn, """
            SELECT id, name, zone_id, online_changed_at FROM devices
             WHERE site_id = %(site)s AND status = 'active' AND online IS FALSE
             ORDER BY online_changed_at NULLS FIRST, id LIMIT %(limit)s""", p),
        "active_alarms": rows(conn, """
            SELECT a.id, a.device_id, d.name AS device, a.severity, a.message, a.state,
                   a.raised_at
              FROM alarms a LEFT JOIN devices d ON d.site_id = a.site_id AND d.id = a.device_id
             WHERE a.site_id = %(site)s AND a.state <> 'cleared' AND a.raised_at < %(end)s
             ORDER BY array_position(ARRAY['critical','major','minor','warning'], a.severity),
                      a.raised_at LIMIT %(limit)s""", p),
        "open_tickets": rows(conn, """
            SELECT w.id, w.title, w.device_id, d.name AS device, w.severity, w.state,
                   w.assignee, w.opened_at, w.resolve_by, w.resolve_by < %(end)s AS overdue
              FROM work_orders w
              LEFT JOIN devices d ON d.site_id = w.site_id AND d.id = w.device_id
             WHERE w.site_id = %(site)s AND w.state IN ('open', 'acknowledged', 'in_progress')
               AND w.opened_at < %(end)s
             ORDER BY w.resolve_by < %(end)s DESC, w.resolve_by LIMIT %(limit)s""", p),
        "inspections_done": rows(conn, """
            SELECT v.checkpoint_id, c.name AS checkpoint, v.scan_time, v.timing
              FROM patrol_visits v
              LEFT JOIN checkpoints c ON c.site_id = v.site_id AND c.id = v.checkpoint_id
             WHERE v.site_id = %(site)s AND v.equipment AND v.scan_time >= %(start)s
               AND v.scan_time < %(end)s
             ORDER BY v.scan_time LIMIT %(limit)s""", p),
        "inspections_due": rows(conn, """
            SELECT v.checkpoint_id, c.name AS checkpoint, v.due_at, v.window_end, v.timing,
                   v.due_at >= %(end)s AS next_shift
              FROM patrol_visits v
              LEFT JOIN checkpoints c ON c.site_id = v.site_id AND c.id = v.checkpoint_id
             WHERE v.site_id = %(site)s AND v.equipment AND v.scan_id IS NULL
               AND v.due_at >= %(start)s AND v.due_at < %(next_end)s
             ORDER BY v.due_at LIMIT %(limit)s""", p),
        "out_of_range": rows(conn, """
            SELECT a.device_id, d.name AS device, a.metric, a.first_value, a.last_value,
                   a.severity, a.message, a.raised_at
              FROM alarms a LEFT JOIN devices d ON d.site_id = a.site_id AND d.id = a.device_id
             WHERE a.site_id = %(site)s AND a.metric IS NOT NULL
               AND a.raised_at >= %(start)s AND a.raised_at < %(end)s
             ORDER BY a.raised_at LIMIT %(limit)s""", p),
        "findings": rows(conn, """
            SELECT f.checkpoint_id, c.name AS checkpoint, f.device_id, f.problems, f.scan_time
              FROM inspection_findings f
              LEFT JOIN checkpoints c ON c.site_id = f.site_id AND c.id = f.checkpoint_id
             WHERE f.site_id = %(site)s AND f.scan_time >= %(start)s AND f.scan_time < %(end)s
             ORDER BY f.scan_time LIMIT %(limit)s""", p),
        "notes": notes,
        "previous_id": previous["id"] if previous else None,
    }
    return dict(_jsonable(content))


def write_due(conn: psycopg.Connection[Any], now: datetime) -> list[int]:
    """Write the sheet of each configured site's last shift change, if not written yet.

    Only the last change is written: after downtime, the sheets of older changes are not.
    """
    created = []
    for site in rows(conn, "SELECT id, timezone FROM sites WHERE NOT auto_registered"
                           " ORDER BY id"):
        spec = site_settings(conn, site["id"])
        end, start = shift_changes(now, site["timezone"], spec.shift_times)
        if one(conn, "SELECT 1 FROM handovers WHERE site_id = %s AND shift_end = %s",
               (site["id"], end)):
            continue
        content = gather(conn, site["id"], start, end)
        within = spec.handover.sign_within
        # signed within 30 min of the change; a sheet written late (downtime) from its writing
        sign_by = end + within if now <= end + within else now + within
        row = one(conn, """
            INSERT INTO handovers (site_id, shift_start, shift_end, language, content,
                                   created_at, sign_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (site_id, shift_end) DO NOTHING RETURNING id""",
                  (site["id"], start, end, spec.language, Jsonb(content), now,
                   sign_by))
        if row:
            created.append(int(row["id"]))
    return created


def notify_unsigned(conn: psycopg.Connection[Any], now: datetime) -> list[int]:
    """Tell the supervisor, once, of each sheet still unsigned after its signing time."""
    late = rows(conn, """
        UPDATE handovers SET unsigned_notified_at = %(now)s
         WHERE sign_by <= %(now)s AND unsigned_notified_at IS NULL
           AND (outgoing_at IS NULL OR incoming_at IS NULL)
        RETURNING id, site_id, shift_start, shift_end, sign_by, outgoing_by, incoming_by""",
                {"now": now})
    for h in late:
        notify(conn, site_id=h["site_id"], subject="handover", event="unsigned",
               record={**_jsonable(h), "link": f"/api/v1/handovers/{h['id']}.html"},
               now=now, audience=["supervisor"])
    return [int(h["id"]) for h in late]


def tick(conn: psycopg.Connection[Any], now: datetime) -> None:
    """The rules worker's handover job: write due sheets, tell of unsigned ones."""
    write_due(conn, now)
    notify_unsigned(conn, now)


def get(conn: psycopg.Connection[Any], handover_id: int, *, scope: str | None
        ) -> dict[str, Any]:
    """One sheet; NotFound when there is none (or it belongs to a site outside `scope`)."""
    row = one(conn, "SELECT " + COLUMNS + " FROM handovers WHERE id = %s"  # noqa: S608
              " AND (%s::text IS NULL OR site_id = %s)", (handover_id, scope, scope))
    if row is None:
        raise NotFound(f"handover sheet {handover_id} not found")
    return row


def list_sheets(conn: psycopg.Connection[Any], *, site: str | None, scope: str | None,
                limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Sheets newest first, of one site or all the caller may see."""
    p = {"site": site, "scope": scope, "limit": limit, "offset": offset}
    where = (" WHERE (%(site)s::text IS NULL OR site_id = %(site)s)"
             " AND (%(scope)s::text IS NULL OR site_id = %(scope)s)")
    total = one(conn, "SELECT count(*) AS n FROM handovers" + where, p)  # noqa: S608
    items = rows(conn, "SELECT " + COLUMNS + " FROM handovers" + where  # noqa: S608
                 + " ORDER BY shift_end DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s", p)
    return items, int(total["n"]) if total else 0


def sign(conn: psycopg.Connection[Any], handover_id: int, *, side: str, actor: str,
         token_id: int, note: str | None, now: datetime, scope: str | None) -> dict[str, Any]:
    """Sign one side of a sheet; the same person cannot sign both sides, nor a side twice."""
    if side not in SIDES:
        raise Invalid(f"side must be one of {', '.join(SIDES)}")
    row = one(conn, "SELECT " + COLUMNS + ", outgoing_token, incoming_token"  # noqa: S608
              " FROM handovers WHERE id = %s AND (%s::text IS NULL OR site_id = %s)"
              " FOR UPDATE", (handover_id, scope, scope))
    if row is None:
        raise NotFound(f"handover sheet {handover_id} not found")
    if row[f"{side}_at"] is not None:
        raise Conflict(f"the {side} side was signed already by {row[f'{side}_by']}")
    other = "incoming" if side == "outgoing" else "outgoing"
    if row[f"{other}_at"] is not None and (row[f"{other}_by"] == actor
                                           or row[f"{other}_token"] == token_id):
        raise Conflict(f"{actor} signed the {other} side: the same person cannot sign both")
    query = ("UPDATE handovers SET outgoing_by = %s, outgoing_token = %s, outgoing_at = %s,"
             " outgoing_note = %s WHERE id = %s" if side == "outgoing" else
             "UPDATE handovers SET incoming_by = %s, incoming_token = %s, incoming_at = %s,"
             " incoming_note = %s WHERE id = %s")
    conn.execute(query, (actor, token_id, now, note, handover_id))
    return get(conn, handover_id, scope=scope)


def state_of(row: dict[str, Any], now: datetime) -> str:
    """signed (both sides), unsigned_late (past its signing time), or awaiting."""
    if row["outgoing_at"] is not None and row["incoming_at"] is not None:
        return "signed"
    return "unsigned_late" if now >= row["sign_by"] else "awaiting"


def to_html(row: dict[str, Any], site_name: str, tz: str, language: str | None = None) -> str:
    """A sheet as a self-contained HTML page (in the site's language unless told)."""
    return render_html("handover.html", language or row["language"], h=row,
                       c=_times(row["content"]), site_name=site_name, tz=tz)


def to_pdf(row: dict[str, Any], site_name: str, tz: str, language: str | None = None) -> bytes:
    """A sheet as a PDF."""
    return html_to_pdf(to_html(row, site_name, tz, language))


def _times(value: Any) -> Any:
    """Stored content with its ISO 8601 times back as datetimes, for formatting."""
    if isinstance(value, dict):
        return {k: _times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value
