"""A hazard's photo, sent after its scan: attached to the work order the scan opened.

A phone queues a hazard (an `abnormal` scan with a note) and its photo together, but the
photo can only go with the ticket, and the ticket exists once the patrol worker has checked
the scan. So the photo waits for it (`NotYet`, the phone tries again later), and sending it
again attaches nothing new: its file name is the scan's, one per ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from caretaker import errors
from rules.patrol.store import Conn
from tickets import attachments


class NotFound(errors.NotFound):
    """No such scan (in the caller's site, or of the caller's guard)."""


class NotYet(errors.Conflict):
    """The scan has no work order yet: the patrol worker has not checked it."""

    code = "not_yet"


class NotAHazard(errors.Invalid):
    """The scan reported nothing abnormal, so no ticket will take its photo."""


def photo_name(scan_id: UUID) -> str:
    """The file name a scan's photo is stored under (one per scan and ticket)."""
    return f"scan-{scan_id}"


def attach(conn: Conn, scan_id: UUID, *, data: bytes, declared_type: str | None,
           scope: str | None, guard: str | None, actor: str, now: datetime,
           max_bytes: int) -> tuple[dict[str, Any], bool]:
    """Attach the photo to the scan's work order; (its metadata, whether it is new)."""
    scan = conn.execute(
        "SELECT s.scan_id, s.site_id, s.result, f.work_order_id FROM scans s"
        " LEFT JOIN inspection_findings f ON f.scan_id = s.scan_id WHERE s.scan_id = %s"
        " AND (%s::text IS NULL OR s.site_id = %s) AND (%s::text IS NULL OR s.guard_id = %s)",
        (scan_id, scope, scope, guard, guard)).fetchone()
    if scan is None:
        raise NotFound(f"scan {scan_id} not found")
    if scan["work_order_id"] is None:
        if scan["result"] != "abnormal":
            checked = conn.execute("SELECT 1 FROM scan_checks WHERE scan_id = %s",
                                   (scan_id,)).fetchone()
            if checked is not None:
                raise NotAHazard("this scan reported nothing abnormal: no ticket takes a photo")
        raise NotYet("the scan's work order is not open yet; send the photo again shortly")
    wo = int(scan["work_order_id"])
    # the ticket locked first: two sends of one photo at once attach it once
    conn.execute("SELECT 1 FROM work_orders WHERE id = %s FOR UPDATE", (wo,))
    base = photo_name(scan_id)
    found = conn.execute(
        sql.SQL("SELECT {} FROM attachments WHERE work_order_id = %s AND filename LIKE %s"
                " ORDER BY id LIMIT 1").format(sql.SQL(attachments.META)),
        (wo, base + ".%")).fetchone()
    if found is not None:
        return dict(found), False
    kind = attachments.content_type(data, declared_type)
    return attachments.add(conn, "work_order", wo, data=data,
                           filename=base + attachments.EXTENSIONS[kind],
                           declared_type=declared_type, phase="before", actor=actor,
                           now=now, max_bytes=max_bytes, scope=scope), True
