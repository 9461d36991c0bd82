"""The dedup and alarm stage: one active alarm per (device, rule), its lifecycle and history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from caretaker.errors import Conflict, NotFound
from caretaker.paging import Where, fetch_page
from caretaker.severity import SEVERITIES, SEVERITY_RANK
from rules import state as rule_state
from rules.model import Decision, Rule
from tickets import work_orders


class AlarmError(Conflict):
    """A request the alarm lifecycle refuses in the alarm's current state."""


class AlarmNotFound(NotFound, AlarmError):
    """No such alarm (in the caller's scope)."""


def add_history(conn: psycopg.Connection[Any], alarm_id: int, *, at: datetime, action: str,
                actor: str, note: str | None = None) -> None:
    """Append an entry to an alarm's history."""
    conn.execute("INSERT INTO alarm_history (alarm_id, at, action, actor, note)"
                 " VALUES (%s, %s, %s, %s, %s)", (alarm_id, at, action, actor, note))


_ORDER = list(reversed(SEVERITIES))  # least severe first, for array_position in SQL


def raise_alarm(conn: psycopg.Connection[Any], rule: Rule, device: str, decision: Decision, *,
                now: datetime, suppressed_by: str | None) -> tuple[dict[str, Any], bool]:
    """Insert the active alarm of (device, rule), or count a repeat on it; (row, created)."""
    severity = decision.severity or rule.severity
    row = conn.execute(
        "INSERT INTO alarms (site_id, device_id, rule_id, severity, peak_severity, message,"
        " metric, first_value, last_value, raised_at, last_at, suppressed_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (site_id, device_id, rule_id) WHERE state <> 'cleared' DO UPDATE"
        " SET count = alarms.count + 1, last_value = EXCLUDED.last_value,"
        " last_at = EXCLUDED.last_at, severity = EXCLUDED.severity,"
        # the peak never falls
        " peak_severity = CASE WHEN array_position(%s::text[], EXCLUDED.peak_severity)"
        "  > array_position(%s::text[], alarms.peak_severity)"
        "  THEN EXCLUDED.peak_severity ELSE alarms.peak_severity END"
        " RETURNING *, (xmax = 0) AS created",
        (rule.site_id, device, rule.id, severity, severity, decision.message, rule.metric,
         decision.value, decision.value, now, now, suppressed_by, _ORDER, _ORDER)).fetchone()
    assert row is not None
    alarm = dict(row)
    created = bool(alarm.pop("created"))
    if created:
        add_history(conn, alarm["id"], at=now, action="raised", actor="system",
                 note=decision.message)
        if suppressed_by:
            add_history(conn, alarm["id"], at=now, action="suppressed", actor="system",
                     note=suppressed_by)
    else:
        add_history(conn, alarm["id"], at=now, action="retriggered", actor="system",
                 note=decision.message)
    return alarm, created


def change_severity(conn: psycopg.Connection[Any], rule: Rule, device: str,
                    decision: Decision, *, now: datetime) -> tuple[dict[str, Any], str] | None:
    """Move the active alarm of (device, rule) to the decision's level; (row, old severity)."""
    old = conn.execute(
        "SELECT id, severity, peak_severity FROM alarms WHERE site_id = %s AND device_id = %s"
        " AND rule_id = %s AND state <> 'cleared' FOR UPDATE",
        (rule.site_id, device, rule.id)).fetchone()
    if old is None or decision.severity is None:
        return None
    new = decision.severity
    peak = max(new, old["peak_severity"], key=SEVERITY_RANK.__getitem__)
    row = conn.execute(
        "UPDATE alarms SET severity = %s, peak_severity = %s, message = %s, last_value = %s,"
        " last_at = %s WHERE id = %s RETURNING *",
        (new, peak, decision.message, decision.value, now, old["id"])).fetchone()
    assert row is not None
    if new != old["severity"]:
        worse = SEVERITY_RANK[new] > SEVERITY_RANK[old["severity"]]
        add_history(conn, old["id"], at=now,
                    action="severity_raised" if worse else "severity_lowered",
                    actor="system", note=f"{old['severity']} -> {new}: {decision.message}")
    return dict(row), str(old["severity"])


def update_alarm(conn: psycopg.Connection[Any], rule: Rule, device: str, decision: Decision, *,
                 now: datetime) -> int | None:
    """Record a further triggering reading on the active alarm; its id, if there is one."""
    row = conn.execute(
        "UPDATE alarms SET last_value = %s, last_at = %s, count = count + %s"
        " WHERE site_id = %s AND device_id = %s AND rule_id = %s AND state <> 'cleared'"
        " RETURNING id", (decision.value, now, 1 if decision.retrigger else 0,
                          rule.site_id, device, rule.id)).fetchone()
    if row is None:
        return None
    if decision.retrigger:
        add_history(conn, row["id"], at=now, action="retriggered", actor="system",
                 note=decision.message)
    return int(row["id"])


def clear_active(conn: psycopg.Connection[Any], site: str, device: str, rule_id: str, *,
                 now: datetime, actor: str = "system", note: str | None = None
                 ) -> dict[str, Any] | None:
    """Clear the active alarm of (device, rule), noting it on its ticket; the row, if any."""
    row = conn.execute(
        "UPDATE alarms SET state = 'cleared', cleared_at = %s, cleared_by = %s"
        " WHERE site_id = %s AND device_id = %s AND rule_id = %s AND state <> 'cleared'"
        " RETURNING *", (now, actor, site, device, rule_id)).fetchone()
    if row is None:
        return None
    alarm = dict(row)
    _after_clear(conn, alarm, now=now, actor=actor, note=note)
    return alarm


def _after_clear(conn: psycopg.Connection[Any], alarm: dict[str, Any], *, now: datetime, actor: str,
                 note: str | None) -> None:
    add_history(conn, alarm["id"], at=now, action="cleared", actor=actor,
             note=note or ("clear condition met" if actor == "system" else None))
    if alarm["work_order_id"] is not None:
        work_orders.note_alarm_cleared(conn, alarm["work_order_id"], alarm_id=alarm["id"],
                                       now=now, actor=actor)


def acknowledge(conn: psycopg.Connection[Any], alarm_id: int, *, actor: str, now: datetime,
                note: str | None = None, scope: str | None = None) -> dict[str, Any]:
    """Acknowledge an active alarm."""
    alarm = _get_row(conn, alarm_id, scope=scope, lock=True)
    if alarm["state"] != "active":
        raise AlarmError(f"cannot acknowledge an alarm that is {alarm['state']}")
    row = conn.execute("UPDATE alarms SET state = 'acknowledged', acknowledged_at = %s,"
                       " acknowledged_by = %s WHERE id = %s RETURNING *",
                       (now, actor, alarm_id)).fetchone()
    add_history(conn, alarm_id, at=now, action="acknowledged", actor=actor, note=note)
    return dict(row or {})


def clear_by_hand(conn: psycopg.Connection[Any], alarm_id: int, *, actor: str, now: datetime,
                  note: str | None = None, scope: str | None = None) -> dict[str, Any]:
    """Clear an alarm by hand; its rule starts afresh for the device (it may raise again)."""
    alarm = _get_row(conn, alarm_id, scope=scope, lock=False)
    key = (alarm["site_id"], alarm["rule_id"], alarm["device_id"])
    rule_state.reset(conn, key)  # takes the key lock before the alarm row lock
    alarm = _get_row(conn, alarm_id, scope=scope, lock=True)
    if alarm["state"] == "cleared":
        raise AlarmError("the alarm is already cleared")
    row = conn.execute("UPDATE alarms SET state = 'cleared', cleared_at = %s, cleared_by = %s"
                       " WHERE id = %s RETURNING *", (now, actor, alarm_id)).fetchone()
    cleared = dict(row or {})
    _after_clear(conn, cleared, now=now, actor=actor, note=note)
    return cleared


def _get_row(conn: psycopg.Connection[Any], alarm_id: int, *, scope: str | None,
             lock: bool) -> dict[str, Any]:
    query = "SELECT * FROM alarms WHERE id = %s"
    params: list[Any] = [alarm_id]
    if scope is not None:
        query += " AND site_id = %s"
        params.append(scope)
    row = conn.execute(query + (" FOR UPDATE" if lock else ""), params).fetchone()
    if row is None:
        raise AlarmNotFound(f"alarm {alarm_id} not found")
    return dict(row)


def get_alarm(conn: psycopg.Connection[Any], alarm_id: int, *,
              scope: str | None = None) -> dict[str, Any]:
    """One alarm with its history."""
    alarm = _get_row(conn, alarm_id, scope=scope, lock=False)
    alarm["history"] = [dict(r) for r in conn.execute(
        "SELECT at, action, actor, note FROM alarm_history WHERE alarm_id = %s ORDER BY id",
        (alarm_id,))]
    return alarm


FILTERS = {"site": "site_id", "device": "device_id", "severity": "severity", "state": "state",
           "rule": "rule_id", "peak_severity": "peak_severity"}


def list_alarms(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
                since: datetime | None, until: datetime | None, limit: int,
                offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of alarms, newest first, and how many match."""
    where = Where()
    where.equals_all(filters, FILTERS)
    where.equals("site_id", scope)
    where.within("raised_at", since, until)
    return fetch_page(conn, "alarms", where, order="raised_at DESC, id DESC", limit=limit,
                      offset=offset)
