"""The act stage for tickets: fault work orders, their checked lifecycle, repeats, escalations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from caretaker import errors, privacy
from caretaker.paging import Where, fetch_page
from tickets import lifecycle
from tickets.lifecycle import WORK_ORDER, Transition
from tickets.notify import notify
from tickets.policy import PRIORITY, URGENCY_SEVERITY, Policy, load_policy

LIVE = ("open", "acknowledged", "in_progress")
STATES = ("open", "acknowledged", "in_progress", "resolved", "closed", "cancelled")
SOURCES = ("alarm", "inspection", "patrol", "manual", "complaint", "preventive", "calibration",
           "verification")
# 公区维修 common-area repair, 居家维修 in-home repair (a paid service, 有偿服务),
# 整改 rectification, 设备 equipment, 其他 other
CATEGORIES = ("公区维修", "居家维修", "整改", "设备", "其他")
URGENCIES = ("急修", "零修")  # urgent / routine: set a manual ticket's deadlines
CHANNELS = ("phone", "wechat", "front_desk", "console", "app", "system")
MANUAL_CHANNELS = CHANNELS[:-1]  # how a person reports; "system" is the sensors' and rules'
# Tickets about equipment: a sensor alarm or a checklist finding at an equipment checkpoint.
EQUIPMENT_SOURCES = ("alarm", "inspection")
# The tickets the front desk (客服) takes in and so may dispatch, close and cancel.
FRONT_DESK_SOURCES = ("manual", "complaint")


# The errors every ticket lifecycle raises (tickets.lifecycle), under this module's names.
WorkOrderError = lifecycle.Refused
NotFound = lifecycle.NotFound
Invalid = lifecycle.Invalid

TRANSITIONS = {
    "acknowledge": Transition(("open",), "acknowledged", "acknowledged_at"),
    "start": Transition(("acknowledged",), "in_progress", "started_at"),
    "resolve": Transition(("in_progress",), "resolved", "resolved_at"),
    # from resolved (the follow-up visit is a record of its own); from a live state with a reason
    "close": Transition(("resolved", *LIVE), "closed", "closed_at"),
    "cancel": Transition(LIVE, "cancelled", "cancelled_at"),
    "reopen": Transition(("resolved",), "in_progress", None),
    # a dissatisfied follow-up visit sends the work back (返工)
    "rework": Transition(("resolved", "closed"), "in_progress", None),
}


# Who may take each step (admin always): engineers do the repair; supervisors also close and
# cancel; the front desk creates, dispatches (assigns), closes and cancels the tickets it takes
# in (FRONT_DESK_SOURCES) but touches no equipment and does no repair work itself.
ROLES = {
    "create": ("supervisor", "engineer", "frontdesk"),
    "acknowledge": ("supervisor", "engineer"),
    "start": ("supervisor", "engineer"),
    "resolve": ("supervisor", "engineer"),
    "reopen": ("supervisor", "engineer"),
    "assign": ("supervisor", "engineer", "frontdesk"),
    "close": ("supervisor", "frontdesk"),
    "cancel": ("supervisor", "frontdesk"),
    "rework": ("supervisor", "engineer", "frontdesk"),
}


def may(role: str, action: str, source: str | None = None) -> bool:
    """Whether a role may take this step on a ticket from this source (None: any source)."""
    if role == "admin":
        return True
    if role not in ROLES.get(action, ()):
        return False
    return role != "frontdesk" or source is None or source in FRONT_DESK_SOURCES


@dataclass(frozen=True)
class Person:
    """A resident or staff member who reports a fault (报事人): name, unit/room, phone."""

    name: str | None = None
    unit: str | None = None
    phone: str | None = None


def _lock(conn: psycopg.Connection[Any], *parts: object) -> None:
    """Serialise work on one fault key across transactions and processes."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (int.from_bytes(digest, "big",
                                                                      signed=True),))


def _history(conn: psycopg.Connection[Any], wo_id: int, *, at: datetime, action: str, actor: str,
             frm: str | None = None, to: str | None = None, note: str | None = None) -> None:
    lifecycle.history(conn, WORK_ORDER, wo_id, at=at, action=action, actor=actor, frm=frm, to=to,
                      note=note)


def _row(conn: psycopg.Connection[Any], wo_id: int, *, lock: bool = False,
         scope: str | None = None) -> dict[str, Any]:
    return lifecycle.row(conn, WORK_ORDER, wo_id, lock=lock, scope=scope)


def open_work_order(conn: psycopg.Connection[Any], *, site_id: str, device_id: str | None,
                    severity: str, title: str, description: str, source: str,
                    source_ref: str | None, now: datetime, rule_id: str | None = None,
                    alarm_id: int | None = None, actor: str = "system",
                    category: str = "设备", channel: str = "system", zone_id: str | None = None,
                    checkpoint_id: str | None = None) -> int:
    """Open a fault ticket (or note a repeat on the recent one); return the ticket's id.

    Idempotent on (source, source_ref): the same fault always answers the same ticket.
    """
    if source_ref is not None:
        found = conn.execute("SELECT work_order_id FROM work_order_refs WHERE source = %s"
                             " AND source_ref = %s", (source, source_ref)).fetchone()
        if found:
            return int(found["work_order_id"])
    _lock(conn, "wo", site_id, device_id, rule_id, source)
    if source_ref is not None:  # a racer may have opened it while we waited for the lock
        found = conn.execute("SELECT work_order_id FROM work_order_refs WHERE source = %s"
                             " AND source_ref = %s", (source, source_ref)).fetchone()
        if found:
            return int(found["work_order_id"])
    policy = load_policy(conn, site_id)
    # A repeat fault is a device's: reports with no device (a guard's hazards) are each their own.
    recent = None if device_id is None else conn.execute(
        "SELECT * FROM work_orders WHERE site_id = %s AND device_id IS NOT DISTINCT FROM %s"
        " AND rule_id IS NOT DISTINCT FROM %s AND source = %s AND state <> 'cancelled'"
        " AND opened_at >= %s ORDER BY opened_at DESC, id DESC LIMIT 1 FOR UPDATE",
        (site_id, device_id, rule_id, source,
         now - timedelta(seconds=policy.repeat_within))).fetchone()
    repeat_of = None
    if recent is not None:
        recent = dict(recent)
        if recent["state"] in LIVE or (recent["state"] == "resolved"
                                       and policy.repeat_action == "reopen"):
            return _repeat_on(conn, recent, policy, source=source, source_ref=source_ref,
                              description=description, now=now, actor=actor)
        if recent["state"] == "closed" and policy.repeat_action == "reopen":
            return _repeat_on(conn, recent, policy, source=source, source_ref=source_ref,
                              description=description, now=now, actor=actor)
        repeat_of = recent["id"]
        description = f"Repeat fault (earlier ticket #{repeat_of}). {description}"
    respond_by, resolve_by = policy.deadlines_for(severity, now)
    row = conn.execute(
        "INSERT INTO work_orders (site_id, device_id, rule_id, alarm_id, source, source_ref,"
        " severity, priority, title, description, opened_at, respond_by, resolve_by, repeat_of,"
        " updated_at, category, channel, zone_id, checkpoint_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING *",
        (site_id, device_id, rule_id, alarm_id, source, source_ref, severity,
         PRIORITY[severity], title, description, now, respond_by, resolve_by, repeat_of,
         now, category, channel, zone_id, checkpoint_id)).fetchone()
    assert row is not None
    wo_id = int(row["id"])
    if source_ref is not None:
        conn.execute("INSERT INTO work_order_refs (source, source_ref, work_order_id, at)"
                     " VALUES (%s, %s, %s, %s)", (source, source_ref, wo_id, now))
    _history(conn, wo_id, at=now, action="opened", to="open", actor=actor,
             note=f"repeat of #{repeat_of}" if repeat_of else None)
    notify(conn, site_id=site_id, subject="work_order", event="opened", record=dict(row),
           now=now)
    conn.execute("SELECT pg_notify('caretaker_work_orders', %s)", (str(wo_id),))
    return wo_id


def open_manual(conn: psycopg.Connection[Any], *, site_id: str, category: str, urgency: str,
                channel: str, description: str, reporter: Person, now: datetime, actor: str,
                title: str | None = None, zone_id: str | None = None,
                checkpoint_id: str | None = None, device_id: str | None = None
                ) -> dict[str, Any]:
    """Open a manual ticket (报事报修); deadlines from the urgency in the site's policy."""
    if category not in CATEGORIES:
        raise Invalid(f"category must be one of {', '.join(CATEGORIES)}")
    if urgency not in URGENCIES:
        raise Invalid(f"urgency must be one of {', '.join(URGENCIES)}")
    if channel not in MANUAL_CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(MANUAL_CHANNELS)}")
    if category == "居家维修" and not reporter.unit:
        raise Invalid("an in-home repair (居家维修) needs the reporter's unit")
    if conn.execute("SELECT 1 FROM sites WHERE id = %s", (site_id,)).fetchone() is None:
        raise Invalid(f"no site {site_id!r}")
    zone_id = _place(conn, site_id, zone_id=zone_id, checkpoint_id=checkpoint_id,
                     device_id=device_id)
    severity = URGENCY_SEVERITY[urgency]
    respond_by, resolve_by = load_policy(conn, site_id).deadlines_for_urgency(urgency, now)
    row = conn.execute(
        "INSERT INTO work_orders (site_id, device_id, source, severity, priority, title,"
        " description, opened_at, respond_by, resolve_by, updated_at, category, urgency, channel,"
        " reporter_name, reporter_unit, reporter_phone, zone_id, checkpoint_id)"
        " VALUES (%s, %s, 'manual', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s) RETURNING *",
        (site_id, device_id, severity, PRIORITY[severity],
         title or _title(category, description), description, now, respond_by, resolve_by, now,
         category, urgency, channel, reporter.name, reporter.unit, reporter.phone, zone_id,
         checkpoint_id)).fetchone()
    assert row is not None
    wo_id = int(row["id"])
    _history(conn, wo_id, at=now, action="opened", to="open", actor=actor,
             note=f"{urgency} {category} via {channel}")
    notify(conn, site_id=site_id, subject="work_order", event="opened", record=dict(row),
           now=now)
    conn.execute("SELECT pg_notify('caretaker_work_orders', %s)", (str(wo_id),))
    return dict(row)


def _title(category: str, description: str) -> str:
    """A ticket's title when none is given: the category and the description's first line."""
    first = description.strip().splitlines()[0] if description.strip() else ""
    return f"{category}: {first[:60]}" if first else category


def _place(conn: psycopg.Connection[Any], site_id: str, *, zone_id: str | None,
           checkpoint_id: str | None, device_id: str | None) -> str | None:
    """Check the named zone, checkpoint and device exist in the site; the ticket's zone.

    Without a zone given, the zone is the checkpoint's or the device's.
    """
    zones: list[str | None] = []
    if zone_id is not None and conn.execute(
            "SELECT 1 FROM zones WHERE site_id = %s AND id = %s", (site_id, zone_id)
    ).fetchone() is None:
        raise Invalid(f"no zone {zone_id!r} in site {site_id!r}")
    for table, ref in (("checkpoints", checkpoint_id), ("devices", device_id)):
        if ref is None:
            continue
        found = conn.execute(sql.SQL("SELECT zone_id FROM {} WHERE site_id = %s AND id = %s")
                             .format(sql.Identifier(table)), (site_id, ref)).fetchone()
        if found is None:
            raise Invalid(f"no {table[:-1]} {ref!r} in site {site_id!r}")
        zones.append(found["zone_id"])
    return zone_id or next((z for z in zones if z), None)


def _repeat_on(conn: psycopg.Connection[Any], recent: dict[str, Any], policy: Policy, *,
               source: str, source_ref: str | None, description: str, now: datetime,
               actor: str) -> int:
    """Record a repeat fault on a recent ticket, reopening it if it was resolved or closed."""
    wo_id = int(recent["id"])
    if source_ref is not None:
        conn.execute("INSERT INTO work_order_refs (source, source_ref, work_order_id, at)"
                     " VALUES (%s, %s, %s, %s)", (source, source_ref, wo_id, now))
    if recent["state"] in LIVE:
        conn.execute("UPDATE work_orders SET repeat_count = repeat_count + 1, updated_at = %s"
                     " WHERE id = %s", (now, wo_id))
        _history(conn, wo_id, at=now, action="repeat", actor=actor, note=description)
        return wo_id
    respond_by, resolve_by = policy.deadlines_for(recent["severity"], now)
    row = conn.execute(
        "UPDATE work_orders SET state = 'open', repeat_count = repeat_count + 1,"
        " respond_by = %s, resolve_by = %s, overdue = false, acknowledged_at = NULL,"
        " started_at = NULL, resolved_at = NULL, closed_at = NULL, alarm_cleared_at = NULL,"
        " updated_at = %s WHERE id = %s RETURNING *",
        (respond_by, resolve_by, now, wo_id)).fetchone()
    _history(conn, wo_id, at=now, action="reopened", frm=recent["state"], to="open", actor=actor,
             note=f"repeat fault: {description}")
    notify(conn, site_id=recent["site_id"], subject="work_order", event="opened",
           record=dict(row or {}), now=now, extra={"reopened": True})
    conn.execute("SELECT pg_notify('caretaker_work_orders', %s)", (str(wo_id),))
    return wo_id


def transition(conn: psycopg.Connection[Any], wo_id: int, action: str, *, actor: str,
               now: datetime, note: str | None = None, scope: str | None = None,
               role: str | None = None) -> dict[str, Any]:
    """Move a ticket along its lifecycle if the step is allowed; the updated ticket.

    `role` is the caller's (None: the system's own steps, not checked).
    """
    step = TRANSITIONS.get(action)
    if step is None:
        raise Invalid(f"unknown action {action!r}")
    wo = _row(conn, wo_id, lock=True, scope=scope)
    _check_role(role, action, wo)
    state = wo["state"]
    lifecycle.check(WORK_ORDER, action, step, state)
    if action in ("cancel", "reopen") and not note:
        raise Invalid(f"{action} needs a note saying why")
    if action == "close" and state != "resolved" and not note:
        raise Invalid(f"closing a work order that is {state} (not resolved) needs a reason")
    sets: dict[str, Any] = {}
    if action == "start" and wo["acknowledged_at"] is None:
        sets["acknowledged_at"] = now
    if action in ("reopen", "rework"):
        sets["resolved_at"] = None
    if action == "rework":
        sets["closed_at"] = None
        sets["rework_count"] = wo["rework_count"] + 1
    updated = lifecycle.move(conn, WORK_ORDER, wo, action, step, actor=actor, now=now, sets=sets,
                             note=note)
    if action == "close":
        notify(conn, site_id=wo["site_id"], subject="work_order", event="closed",
               record=updated, now=now)
    return updated


def _check_role(role: str | None, action: str, wo: dict[str, Any]) -> None:
    """Refuse a step the caller's role may not take on this ticket."""
    if role is not None and not may(role, action, wo["source"]):
        what = "an equipment" if wo["source"] in EQUIPMENT_SOURCES else f"a {wo['source']}"
        raise errors.Forbidden(f"role {role!r} may not {action} {what} work order")


def assign(conn: psycopg.Connection[Any], wo_id: int, assignee: str, *, actor: str, now: datetime,
           note: str | None = None, scope: str | None = None,
           role: str | None = None) -> dict[str, Any]:
    """Give a live ticket to a person (派单)."""
    wo = _row(conn, wo_id, lock=True, scope=scope)
    _check_role(role, "assign", wo)
    if wo["state"] not in (*LIVE, "resolved"):
        raise WorkOrderError(f"cannot assign a work order that is {wo['state']}")
    row = conn.execute("UPDATE work_orders SET assignee = %s, updated_at = %s WHERE id = %s"
                       " RETURNING *", (assignee, now, wo_id)).fetchone()
    _history(conn, wo_id, at=now, action="assigned", actor=actor,
             note=f"to {assignee}" + (f": {note}" if note else ""))
    return dict(row or {})


def raise_severity(conn: psycopg.Connection[Any], wo_id: int, severity: str, *, now: datetime,
                   actor: str = "system") -> bool:
    """Raise a live ticket to a worse severity its fault reached (never lowers it).

    Priority and deadlines follow the highest severity reached: the deadlines are those the
    new severity gives from when the ticket was opened, kept if the old ones were sooner.
    True when the ticket changed.
    """
    wo = _row(conn, wo_id, lock=True)
    if wo["state"] not in LIVE or PRIORITY[severity] >= PRIORITY[wo["severity"]]:
        return False
    respond_by, resolve_by = load_policy(conn, wo["site_id"]).deadlines_for(
        severity, wo["opened_at"])
    row = conn.execute(
        "UPDATE work_orders SET severity = %s, priority = %s, respond_by = least(respond_by, %s),"
        " resolve_by = least(resolve_by, %s), updated_at = %s WHERE id = %s RETURNING *",
        (severity, PRIORITY[severity], respond_by, resolve_by, now, wo_id)).fetchone()
    _history(conn, wo_id, at=now, action="severity_raised", actor=actor,
             note=f"{wo['severity']} -> {severity}")
    notify(conn, site_id=wo["site_id"], subject="work_order", event="escalated",
           record=dict(row or {}), now=now, extra={"severity_raised": severity})
    return True


def add_note(conn: psycopg.Connection[Any], wo_id: int, note: str, *, now: datetime,
             actor: str = "system", action: str = "note") -> None:
    """Add a line to a ticket's history (e.g. a forecast that moved); the state stays."""
    conn.execute("UPDATE work_orders SET updated_at = %s WHERE id = %s", (now, wo_id))
    _history(conn, wo_id, at=now, action=action, actor=actor, note=note)


def note_alarm_cleared(conn: psycopg.Connection[Any], wo_id: int, *, alarm_id: int, now: datetime,
                       actor: str) -> None:
    """Record on the ticket that its alarm cleared; the ticket stays as it is."""
    conn.execute("UPDATE work_orders SET alarm_cleared_at = %s, updated_at = %s WHERE id = %s",
                 (now, now, wo_id))
    _history(conn, wo_id, at=now, action="alarm_cleared", actor=actor,
             note=f"alarm {alarm_id} cleared; the ticket stays open until resolved")


# ---- reads for the API -----------------------------------------------------------------

FILTERS = {"site": "site_id", "device": "device_id", "state": "state", "severity": "severity",
           "rule": "rule_id", "source": "source", "assignee": "assignee", "overdue": "overdue",
           "category": "category", "urgency": "urgency", "channel": "channel"}


def for_role(row: dict[str, Any], role: str) -> dict[str, Any]:
    """A ticket as this role may see it: the reporter's name and phone masked unless it handles
    tickets (caretaker.privacy.HANDLERS)."""
    if privacy.may_see_personal(role):
        return row
    return privacy.masked(row, names=("reporter_name",), phones=("reporter_phone",))


def list_work_orders(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
                     since: datetime | None, until: datetime | None, limit: int,
                     offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of tickets, newest first, and how many match."""
    where = Where()
    where.equals_all(filters, FILTERS)
    where.equals("site_id", scope)
    where.within("opened_at", since, until)
    return fetch_page(conn, "work_orders", where, order="opened_at DESC, id DESC", limit=limit,
                      offset=offset)


def get_work_order(conn: psycopg.Connection[Any], wo_id: int, *,
                   scope: str | None = None) -> dict[str, Any]:
    """One ticket with its history, escalations and the faults linked to it."""
    wo = _row(conn, wo_id, scope=scope)
    wo["history"] = lifecycle.rows(
        conn, "SELECT at, action, from_state, to_state, actor, note FROM work_order_history"
              " WHERE work_order_id = %s ORDER BY id", wo_id)
    wo["escalations"] = lifecycle.rows(
        conn, "SELECT deadline, level, due_at, escalated_at FROM work_order_escalations"
              " WHERE work_order_id = %s ORDER BY escalated_at, deadline, level", wo_id)
    wo["faults"] = lifecycle.rows(
        conn, "SELECT source, source_ref, at FROM work_order_refs"
              " WHERE work_order_id = %s ORDER BY at, source_ref", wo_id)
    return wo

