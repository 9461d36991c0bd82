"""Alarm verification's I/O: send the nearest guard, take their result, escalate the silence.

`request` runs in the transaction that raises the alarm (rules/engine.py), so an alarm is
sent for exactly once: the verification is unique per alarm. `take_scan` runs in the patrol
engine's transaction that checks the guard's scan; `record_result` also serves the API;
`escalate_due` is the rules worker's clock job. Rows are locked before their state changes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg

from caretaker.errors import Conflict, Forbidden, Invalid, NotFound
from caretaker.paging import Where, fetch_page
from rules.alarms import add_history
from rules.verification import Choice, Guard, SiteMap, choose
from rules.verification_config import VerificationSpec, VerifyRule, load_spec
from tickets import work_orders
from tickets.notify import notify

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Result = Literal["confirmed", "false_alarm"]
RESULTS: tuple[Result, ...] = ("confirmed", "false_alarm")
STATES = ("open", "confirmed", "false_alarm", "not_verified")
LOOKBACK = "1 day"  # a last scan older than this says nothing of where a guard is


class VerificationNotFound(NotFound):
    """No such verification (in the caller's scope)."""


class VerificationClosed(Conflict):
    """The verification already has its result."""


# --- sending a guard ----------------------------------------------------------------------

def locate(conn: Conn, site_id: str, device_id: str, entry: VerifyRule) -> str | None:
    """Where to look: the entry's checkpoint, the device's, or one in its zone (patrol first)."""
    if entry.checkpoint:
        return entry.checkpoint
    row = conn.execute(
        "SELECT c.id FROM checkpoints c LEFT JOIN devices d ON d.site_id = c.site_id"
        " AND d.id = %(device)s WHERE c.site_id = %(site)s"
        " AND (c.device_id = %(device)s OR c.zone_id = d.zone_id)"
        " ORDER BY c.device_id = %(device)s DESC NULLS LAST, c.kind = 'patrol' DESC, c.id"
        " LIMIT 1", {"site": site_id, "device": device_id}).fetchone()
    return str(row["id"]) if row else None


def on_duty(conn: Conn, site_id: str, now: datetime, spec: VerificationSpec) -> list[Guard]:
    """The site's guards on duty at `now`: on a run under way, or scanned within `on_duty`."""
    rows = conn.execute(
        "WITH runs AS ("
        "  SELECT DISTINCT ON (g.id) g.id AS guard_id, r.id AS run_id"
        "  FROM patrol_runs r JOIN guards g ON g.site_id = r.site_id AND g.active"
        "   AND (r.guard_id = g.id OR (r.guard_id IS NULL AND r.post = g.post))"
        "  WHERE r.site_id = %(site)s AND r.planned_start <= %(now)s"
        "   AND r.planned_end >= %(now)s"
        "  ORDER BY g.id, r.planned_start DESC),"
        " last AS ("
        "  SELECT DISTINCT ON (s.guard_id) s.guard_id, s.checkpoint_id, s.time"
        "  FROM scans s WHERE s.site_id = %(site)s AND s.checkpoint_id IS NOT NULL"
        "   AND s.time <= %(now)s AND s.time > %(now)s - %(lookback)s::interval"
        "  ORDER BY s.guard_id, s.time DESC)"
        " SELECT g.id, runs.run_id, last.checkpoint_id, last.time FROM guards g"
        " LEFT JOIN runs ON runs.guard_id = g.id LEFT JOIN last ON last.guard_id = g.id"
        " WHERE g.site_id = %(site)s AND g.active"
        "  AND (runs.run_id IS NOT NULL OR last.time >= %(recent)s) ORDER BY g.id",
        {"site": site_id, "now": now, "lookback": LOOKBACK,
         "recent": now - spec.on_duty}).fetchall()
    return [Guard(r["id"], r["checkpoint_id"], r["time"], r["run_id"]) for r in rows]


def site_map(conn: Conn, site_id: str, spec: VerificationSpec) -> SiteMap:
    """The site's map: the section's distances and zone adjacency, checkpoints' zones."""
    zones = {r["id"]: r["zone_id"] for r in conn.execute(
        "SELECT id, zone_id FROM checkpoints WHERE site_id = %s", (site_id,))}
    return SiteMap(distances=spec.distances, zone_of=zones,
                   adjacent_zones=spec.adjacent_zones, zone_step=spec.zone_step)


def request(conn: Conn, alarm: dict[str, Any], *, now: datetime) -> dict[str, Any] | None:
    """Send the nearest on-duty guard to verify a new alarm, if its rule asks for it.

    Returns the verification (None: the rule asks for none, or it exists already). With no
    guard on duty, or no checkpoint to send one to, it is escalated at once.
    """
    spec = load_spec(conn, alarm["site_id"])
    entry = spec.rule(alarm["rule_id"]) if spec is not None else None
    if spec is None or entry is None:
        return None
    site = alarm["site_id"]
    names = conn.execute(
        "SELECT r.name AS rule, d.name AS device FROM rules r LEFT JOIN devices d"
        " ON d.site_id = r.site_id AND d.id = %s WHERE r.site_id = %s AND r.id = %s",
        (alarm["device_id"], site, alarm["rule_id"])).fetchone()
    title = (f"{names['rule']} · {names['device'] or alarm['device_id']}" if names
             else alarm["message"])[:200]
    checkpoint = locate(conn, site, alarm["device_id"], entry)
    choice: Choice | None = None
    if checkpoint is not None:
        choice = choose(on_duty(conn, site, now, spec), checkpoint, site_map(conn, site, spec))
    guard = choice.guard if choice else None
    row = conn.execute(
        "INSERT INTO verifications (site_id, alarm_id, rule_id, device_id, checkpoint_id, title,"
        " guard_id, run_id, from_checkpoint, distance, basis, requested_at, due_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (alarm_id) DO NOTHING RETURNING *",
        (site, alarm["id"], alarm["rule_id"], alarm["device_id"],
         checkpoint, title, guard.id if guard else None,
         guard.run_id if guard else None, guard.last_checkpoint if guard else None,
         choice.distance if choice else None, choice.basis if choice else None, now,
         now + spec.deadline(entry))).fetchone()
    if row is None:
        return None
    ver = dict(row)
    conn.execute("UPDATE alarms SET verification = 'open' WHERE id = %s", (alarm["id"],))
    if guard is None:
        why = "no guard on duty" if checkpoint else "no checkpoint to send a guard to"
        add_history(conn, alarm["id"], at=now, action="verification_requested",
                    actor="system", note=f"verification #{ver['id']}: {why}")
        return _not_verified(conn, ver, spec, now=now, why=why)
    where = (f"{choice.distance:g} m from {guard.last_checkpoint}" if choice and
             choice.distance is not None else "position unknown")
    add_history(conn, alarm["id"], at=now, action="verification_requested", actor="system",
                note=f"verification #{ver['id']}: guard {guard.id} sent to {checkpoint}"
                     f" ({where}), due by {ver['due_by'].isoformat()}")
    notify(conn, site_id=site, subject="verification", event="opened", record=ver, now=now,
           audience=[guard.id], extra={"path": f"/api/v1/verifications/{ver['id']}"})
    return ver


# --- results ------------------------------------------------------------------------------

def _said(ver: dict[str, Any]) -> dict[str, Any]:
    """The verification as a notification carries it (JSON: the scan id as text)."""
    return {**ver, "scan_id": None if ver.get("scan_id") is None else str(ver["scan_id"])}


def _lock(conn: Conn, ver_id: int, scope: str | None) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM verifications WHERE id = %s"
                       " AND (%s::text IS NULL OR site_id = %s) FOR UPDATE",
                       (ver_id, scope, scope)).fetchone()
    if row is None:
        raise VerificationNotFound(f"verification {ver_id} not found")
    return dict(row)


def _close(conn: Conn, ver: dict[str, Any], state: str, *, now: datetime, actor: str,
           note: str | None, scan_id: UUID | None = None) -> dict[str, Any]:
    row = conn.execute(
        "UPDATE verifications SET state = %s, result_at = %s, result_by = %s, note = %s,"
        " scan_id = %s WHERE id = %s RETURNING *",
        (state, now, actor, note, scan_id, ver["id"])).fetchone()
    assert row is not None
    conn.execute("UPDATE alarms SET verification = %s WHERE id = %s", (state, ver["alarm_id"]))
    return dict(row)


def _work_order(conn: Conn, ver: dict[str, Any], spec: VerificationSpec | None, *,
                now: datetime, title: str, description: str) -> int:
    """The verification's work order: the alarm's own ticket raised, or a new one."""
    severity = spec.escalate.severity if spec else "major"
    alarm = conn.execute("SELECT work_order_id FROM alarms WHERE id = %s FOR UPDATE",
                         (ver["alarm_id"],)).fetchone()
    if alarm is not None and alarm["work_order_id"] is not None:
        wo = int(alarm["work_order_id"])
        work_orders.raise_severity(conn, wo, severity, now=now)
    else:
        wo = work_orders.open_work_order(
            conn, site_id=ver["site_id"], device_id=ver["device_id"], severity=severity,
            title=title[:200], description=description, source="verification",
            source_ref=f"verification:{ver['id']}", now=now, rule_id=ver["rule_id"],
            alarm_id=ver["alarm_id"], checkpoint_id=ver["checkpoint_id"])
        conn.execute("UPDATE alarms SET work_order_id = %s WHERE id = %s"
                     " AND work_order_id IS NULL", (wo, ver["alarm_id"]))
    conn.execute("UPDATE verifications SET work_order_id = %s WHERE id = %s", (wo, ver["id"]))
    return wo


def record_result(conn: Conn, ver_id: int, result: str, *, now: datetime, actor: str,
                  note: str | None = None, scope: str | None = None,
                  guard: str | None = None, scan_id: UUID | None = None) -> dict[str, Any]:
    """Record what the guard found: confirmed (a work order opens) or false_alarm.

    `guard` limits it to that guard's own verification (a guard's token); Conflict once a
    result is recorded or the deadline's escalation has marked it not_verified.
    """
    if result not in RESULTS:
        raise Invalid(f"result must be one of {', '.join(RESULTS)}, not {result!r}")
    ver = _lock(conn, ver_id, scope)
    if guard is not None and ver["guard_id"] != guard:
        raise Forbidden(f"verification {ver_id} was sent to another guard")
    if ver["state"] != "open":
        raise VerificationClosed(f"verification {ver_id} is already {ver['state']}")
    ver = _close(conn, ver, result, now=now, actor=actor, note=note, scan_id=scan_id)
    said = f": {note}" if note else ""
    add_history(conn, ver["alarm_id"], at=now, action=f"verified_{result}", actor=actor,
                note=f"verification #{ver_id} at {ver['checkpoint_id']}{said}")
    if result == "confirmed":
        _work_order(conn, ver, load_spec(conn, ver["site_id"]), now=now,
                    title=f"Confirmed by {actor}: {ver['title']}",
                    description=f"{ver['title']}: confirmed on site at {ver['checkpoint_id']}"
                                f" by {actor}{said}")
        ver = _lock(conn, ver_id, None)
    notify(conn, site_id=ver["site_id"], subject="verification", event="answered",
           record=_said(ver), now=now, extra={"lines": [f"{result} ({actor})"]})
    return ver


def take_scan(conn: Conn, scan: dict[str, Any], checkpoint_id: str, now: datetime) -> bool:
    """A guard's scan at the checkpoint of their open verification records its result.

    Result `abnormal` confirms the alarm, anything else calls it a false alarm. True when
    the scan verified something.
    """
    row = conn.execute(
        "SELECT id FROM verifications WHERE site_id = %s AND guard_id = %s"
        " AND checkpoint_id = %s AND state = 'open' AND requested_at <= %s"
        " ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        (scan["site_id"], scan["guard_id"], checkpoint_id, scan["time"])).fetchone()
    if row is None:
        return False
    result = "confirmed" if scan["result"] == "abnormal" else "false_alarm"
    record_result(conn, int(row["id"]), result, now=now, actor=f"guard:{scan['guard_id']}",
                  note=scan.get("note"), scan_id=scan["scan_id"])
    return True


# --- escalation -----------------------------------------------------------------------------

def _not_verified(conn: Conn, ver: dict[str, Any], spec: VerificationSpec | None, *,
                  now: datetime, why: str) -> dict[str, Any]:
    ver = _close(conn, ver, "not_verified", now=now, actor="system", note=why)
    add_history(conn, ver["alarm_id"], at=now, action="not_verified", actor="system",
                note=f"verification #{ver['id']}: {why}")
    who = list(spec.escalate.to) if spec else ["supervisor"]
    notify(conn, site_id=ver["site_id"], subject="verification", event="overdue",
           record=_said(ver), now=now, audience=who, extra={"lines": [why]})
    _work_order(conn, ver, spec, now=now, title=f"Not verified: {ver['title']}",
                description=f"{ver['title']}: nobody verified it at {ver['checkpoint_id']}"
                            f" ({why})")
    return _lock(conn, int(ver["id"]), None)


def escalate_due(conn: Conn, now: datetime, *, limit: int = 100) -> int:
    """Mark the verifications past their deadline not_verified and escalate them."""
    rows = conn.execute(
        "SELECT * FROM verifications WHERE state = 'open' AND due_by <= %s ORDER BY due_by"
        " LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
    specs: dict[str, VerificationSpec | None] = {}
    for row in rows:
        ver = dict(row)
        if ver["site_id"] not in specs:
            specs[ver["site_id"]] = load_spec(conn, ver["site_id"])
        who = ver["guard_id"]
        _not_verified(conn, ver, specs[ver["site_id"]], now=now,
                      why=f"not verified by {ver['due_by'].isoformat()} (sent: {who})")
    return len(rows)


# --- reads ------------------------------------------------------------------------------------

_LIST = ("v.id, v.alarm_id, v.checkpoint_id, c.name AS checkpoint_name, v.due_by, v.title,"
         " v.guard_id, v.state")
_SOURCE = ("verifications v LEFT JOIN checkpoints c ON c.site_id = v.site_id"
           " AND c.id = v.checkpoint_id")


def list_verifications(conn: Conn, *, scope: str | None, site: str | None, state: str | None,
                       guard: str | None, alarm: int | None, limit: int, offset: int
                       ) -> tuple[list[dict[str, Any]], int]:
    """One page of verifications (due soonest first), and how many match."""
    where = Where()
    where.equals_all({"v.site_id": site, "v.state": state, "v.guard_id": guard,
                      "v.alarm_id": alarm})
    where.equals("v.site_id", scope)
    return fetch_page(conn, "verifications", where, select=_LIST, source=_SOURCE,
                      order="v.due_by, v.id", limit=limit, offset=offset)


def get_verification(conn: Conn, ver_id: int, *, scope: str | None,
                     guard: str | None) -> dict[str, Any]:
    """One verification with everything recorded on it."""
    row = conn.execute(
        "SELECT v.*, c.name AS checkpoint_name FROM verifications v LEFT JOIN checkpoints c"
        " ON c.site_id = v.site_id AND c.id = v.checkpoint_id"
        " WHERE v.id = %s AND (%s::text IS NULL OR v.site_id = %s)"
        " AND (%s::text IS NULL OR v.guard_id = %s)",
        (ver_id, scope, scope, guard, guard)).fetchone()
    if row is None:
        raise VerificationNotFound(f"verification {ver_id} not found")
    return dict(row)


def verification_jobs() -> list[Any]:
    """The rules worker's verification job: escalate what nobody verified in time."""
    from caretaker.scheduler import Job

    return [Job("verification-escalation", 1.0, escalate_due)]
