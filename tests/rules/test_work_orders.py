"""Fault work orders: every lifecycle step allowed and refused, deadlines, escalation, repeats."""

from __future__ import annotations

import psycopg
import pytest

from rules import engine
from tests.rules.helpers import SITE, at, make_site, publish, rows, run
from tickets.work_orders import (
    TRANSITIONS,
    Invalid,
    WorkOrderError,
    open_work_order,
    transition,
)

STATES = ("open", "acknowledged", "in_progress", "resolved", "closed", "cancelled")


def _open(conn: psycopg.Connection, severity: str = "major", ref: str = "x:1",
          when: float = 0, device: str = "pump-1") -> int:
    return open_work_order(conn, site_id=SITE, device_id=device, severity=severity,
                           title="pump fault", description="test", source="inspection",
                           source_ref=ref, now=at(when))


def _force(conn: psycopg.Connection, wo_id: int, state: str) -> None:
    conn.execute("UPDATE work_orders SET state = %s WHERE id = %s", (state, wo_id))


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
@pytest.mark.parametrize("state", STATES)
def test_every_transition_allowed_or_refused(conn: psycopg.Connection, action: str,
                                             state: str) -> None:
    make_site(conn, rules=[])
    wo_id = _open(conn)
    _force(conn, wo_id, state)
    allowed = state in TRANSITIONS[action].frm
    if allowed:
        row = transition(conn, wo_id, action, actor="sup-wu", now=at(60), note="because")
        assert row["state"] == TRANSITIONS[action].to
        [last] = rows(conn, "SELECT * FROM work_order_history WHERE work_order_id = %s"
                            " AND action = %s", wo_id, action)
        assert (last["from_state"], last["to_state"], last["actor"]) == (
            state, TRANSITIONS[action].to, "sup-wu")
    else:
        with pytest.raises(WorkOrderError):
            transition(conn, wo_id, action, actor="sup-wu", now=at(60), note="because")
        assert rows(conn, "SELECT state FROM work_orders")[0]["state"] == state


def test_the_whole_lifecycle_closes_without_a_follow_up_field(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[])
    wo_id = _open(conn, "critical")
    for action in ("acknowledge", "start", "resolve"):
        transition(conn, wo_id, action, actor="eng-li", now=at(60))
    # the follow-up visit is a record of its own (follow_ups), not a condition of closing
    row = transition(conn, wo_id, "close", actor="sup-wu", now=at(120))
    assert row["state"] == "closed" and row["closed_at"] == at(120)
    assert row["acknowledged_at"] == at(60)
    assert "satisfaction" not in row and "followup_contact" not in row


def test_closing_unacknowledged_needs_a_reason(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[])
    wo_id = _open(conn)
    with pytest.raises(Invalid):
        transition(conn, wo_id, "close", actor="sup-wu", now=at(5))
    with pytest.raises(Invalid):
        transition(conn, wo_id, "cancel", actor="sup-wu", now=at(5))
    row = transition(conn, wo_id, "close", actor="sup-wu", now=at(5), note="false alarm")
    assert row["state"] == "closed"


def test_deadlines_per_severity_and_site_policy(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[], policy={"deadlines": {"major": {"respond": "10m"}}})
    crit, minor, major = (
        rows(conn, "SELECT * FROM work_orders WHERE id = %s", _open(conn, sev, sev, device=d))[0]
        for sev, d in (("critical", "pump-1"), ("minor", "pump-2"), ("major", "pump-3")))
    assert (crit["respond_by"], crit["resolve_by"]) == (at(15 * 60), at(4 * 3600))
    assert (minor["respond_by"], minor["resolve_by"]) == (at(4 * 3600), at(72 * 3600))
    assert (major["respond_by"], major["resolve_by"]) == (at(10 * 60), at(24 * 3600))


def test_repeat_fault_links_recent_closed_ticket(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))
    publish(conn, "pump-1", at(10), vibration=5)
    run(conn, at(11))
    [first] = rows(conn, "SELECT * FROM work_orders")
    for action in ("acknowledge", "start", "resolve"):
        transition(conn, first["id"], action, actor="eng-li", now=at(100))
    transition(conn, first["id"], "close", actor="sup", now=at(200))
    conn.commit()
    publish(conn, "pump-1", at(3600), vibration=9.5)  # an hour later: same pump, same rule
    run(conn, at(3601))
    tickets = rows(conn, "SELECT * FROM work_orders ORDER BY id")
    assert len(tickets) == 2 and tickets[1]["repeat_of"] == first["id"]
    assert "Repeat fault" in tickets[1]["description"]


def test_repeat_fault_reopens_when_the_policy_says_so(conn: psycopg.Connection) -> None:
    make_site(conn, policy={"repeat_action": "reopen", "repeat_within": "1d"})
    publish(conn, "pump-1", at(0), vibration=9)
    publish(conn, "pump-1", at(10), vibration=5)
    run(conn, at(11))
    [first] = rows(conn, "SELECT * FROM work_orders")
    for action in ("acknowledge", "start", "resolve"):
        transition(conn, first["id"], action, actor="eng-li", now=at(100))
    conn.commit()
    publish(conn, "pump-1", at(600), vibration=9.5)
    run(conn, at(601))
    [again] = rows(conn, "SELECT * FROM work_orders")
    assert again["state"] == "open" and again["repeat_count"] == 1
    assert again["respond_by"] == at(601 + 30 * 60)
    publish(conn, "pump-1", at(700), vibration=5)
    publish(conn, "pump-1", at(2 * 86400), vibration=9.5)  # outside the period: a new ticket
    run(conn, at(2 * 86400 + 1))
    assert len(rows(conn, "SELECT * FROM work_orders")) == 2


def test_open_work_order_is_idempotent_per_fault(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[])
    assert _open(conn, ref="scan:1") == _open(conn, ref="scan:1")
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1


def test_warning_alarm_opens_no_ticket_by_default(conn: psycopg.Connection) -> None:
    make_site(conn, rules=[{"id": "w", "metric": "vibration", "threshold": 4.5, "op": ">=",
                            "severity": "warning"}])
    publish(conn, "pump-1", at(0), vibration=5)
    run(conn, at(1))
    assert len(rows(conn, "SELECT * FROM alarms")) == 1
    assert rows(conn, "SELECT * FROM work_orders") == []
    with conn.transaction():
        engine.tick(conn, at(2))
    assert rows(conn, "SELECT * FROM work_orders") == []
