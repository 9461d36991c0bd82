"""The escalation ladder: each level once, in its time, to its people; two workers racing;
unanswered complaints; and the worker taking an escalation to a real webhook and SMTP server."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from stack.workers import run_rules
from tests.tickets.notify_helpers import (
    T0,
    HttpReceiver,
    at,
    make_site,
    open_complaint,
    open_ticket,
    outbox_rows,
    smtp_server,
)
from tests.waiting import wait_until
from tickets.escalation import (
    DEFAULT_WORK_ORDERS,
    Escalated,
    EscalationError,
    due_levels,
    escalate_due,
    parse_ladder,
)
from tickets.work_orders import transition

HOOK = "http://127.0.0.1:9/{}"
LADDER_RECEIVERS = [
    {"name": "duty", "channel": "webhook", "url": HOOK.format("duty"),
     "audiences": ["engineer_on_duty"]},
    {"name": "eng-manager", "channel": "webhook", "url": HOOK.format("mgr"),
     "audiences": ["engineering_manager"]},
    {"name": "pm-mail", "channel": "email", "to": ["pm@riverside.example"],
     "audiences": ["project_manager"]},
]


def escalate(conn: psycopg.Connection, seconds: float) -> list[tuple[str, int, str, int]]:
    with conn.transaction():
        return [(e.subject, e.id, e.deadline, e.level) for e in escalate_due(conn, at(seconds))]


def history(conn: psycopg.Connection, table: str = "work_order_history") -> list[Any]:
    return [(r["action"], r["note"]) for r in conn.execute(
        f"SELECT action, note FROM {table} WHERE action IN ('overdue', 'escalated')"  # noqa: S608
        " ORDER BY id")]


def test_levels_due_by_the_time_past_the_deadline() -> None:
    ladder = DEFAULT_WORK_ORDERS  # at the deadline, +30 min, +2 h
    assert due_levels(ladder, at(100), at(99)) == []
    assert due_levels(ladder, at(100), at(100)) == [0, 1]
    assert due_levels(ladder, at(100), at(100 + 1799)) == [0, 1]
    assert due_levels(ladder, at(100), at(100 + 1800)) == [0, 1, 2]
    assert due_levels(ladder, at(100), at(100 + 7200)) == [0, 1, 2, 3]
    assert due_levels([], at(0), at(10)) == [0]  # no ladder: only the overdue event


@pytest.mark.parametrize("bad", [
    {"work_orders": [{"level": 2, "who": ["a"]}, {"level": 1, "who": ["b"]}]},
    {"work_orders": [{"level": 1, "after": "1h", "who": ["a"]},
                     {"level": 2, "after": "30m", "who": ["b"]}]},
    {"work_orders": [{"level": 1, "who": []}]},
    {"work_orders": [{"level": 1, "who": ["a"], "channel": "sms"}]},
    {"complaints": [{"level": 0, "who": ["a"]}]},
    {"ladder": []},
])
def test_bad_ladders_are_refused_naming_the_field(bad: dict[str, Any]) -> None:
    with pytest.raises(EscalationError, match="escalation: "):
        parse_ladder(bad)


def test_a_work_order_climbs_the_ladder_each_level_once(conn: psycopg.Connection) -> None:
    make_site(conn, LADDER_RECEIVERS)
    wo = open_ticket(conn)  # critical: respond by +15 min, resolve by +4 h
    assert escalate(conn, 15 * 60 - 1) == []
    assert escalate(conn, 15 * 60) == [("work_order", wo, "respond", 0),
                                       ("work_order", wo, "respond", 1)]
    assert escalate(conn, 15 * 60 + 5) == []
    assert escalate(conn, 45 * 60 - 1) == []
    assert escalate(conn, 45 * 60) == [("work_order", wo, "respond", 2)]
    assert escalate(conn, 2 * 3600 + 15 * 60) == [("work_order", wo, "respond", 3)]
    assert escalate(conn, 3 * 3600) == []
    assert conn.execute("SELECT overdue FROM work_orders").fetchone()["overdue"] is True
    assert [a for a, _ in history(conn)] == ["overdue", "escalated", "escalated", "escalated"]
    assert "level 2 (engineering_manager)" in history(conn)[2][1]
    assert "told eng-manager" in history(conn)[2][1]
    # each level to its own people; the overdue event to the usual receivers (none here)
    sent = [(r["event"], r["receiver"], r["payload"].get("level"))
            for r in outbox_rows(conn, "event <> 'opened'")]
    assert sent == [("escalated", "duty", 1), ("escalated", "eng-manager", 2),
                    ("escalated", "pm-mail", 3)]
    [mail] = outbox_rows(conn, "receiver = 'pm-mail'")
    assert mail["payload"]["title"] == f"【工单升级·第3级】#{wo} 水泵振动超限"
    assert "超时：响应时限 2026-11-23 16:15 已过" in mail["payload"]["lines"]
    assert "升级：第3级 → project_manager" in mail["payload"]["lines"]


def test_responding_stops_the_respond_ladder_not_the_resolve_one(
        conn: psycopg.Connection) -> None:
    make_site(conn, LADDER_RECEIVERS)
    wo = open_ticket(conn)
    assert len(escalate(conn, 15 * 60)) == 2
    with conn.transaction():
        transition(conn, wo, "acknowledge", actor="eng-li", now=at(20 * 60))
    assert escalate(conn, 45 * 60) == []  # answered: the respond ladder stops
    assert escalate(conn, 4 * 3600) == [("work_order", wo, "resolve", 0),
                                        ("work_order", wo, "resolve", 1)]
    with conn.transaction():
        for action in ("start", "resolve"):
            transition(conn, wo, action, actor="eng-li", now=at(4 * 3600 + 60))
    assert escalate(conn, 7 * 3600) == []  # resolved: nothing more


def test_responded_in_time_is_never_escalated(conn: psycopg.Connection) -> None:
    make_site(conn, LADDER_RECEIVERS)
    wo = open_ticket(conn)
    with conn.transaction():
        transition(conn, wo, "acknowledge", actor="eng-li", now=at(60))
    assert escalate(conn, 3 * 3600) == []
    assert history(conn) == []


def test_a_level_by_one_channel_reaches_only_that_channel(conn: psycopg.Connection) -> None:
    make_site(conn, [
        {"name": "mgr-wecom", "channel": "wecom", "url": HOOK.format("w?key=abcd1234"),
         "audiences": ["engineering_manager"]},
        {"name": "mgr-mail", "channel": "email", "to": ["mgr@riverside.example"],
         "audiences": ["engineering_manager"]},
        {"name": "log", "channel": "webhook", "url": HOOK.format("log")},  # hears everything
    ], escalation={"work_orders": [
        {"level": 1, "after": "0s", "who": ["engineering_manager"], "channel": "email"}]})
    open_ticket(conn)
    escalate(conn, 15 * 60)
    sent = [(r["event"], r["receiver"]) for r in outbox_rows(conn, "event <> 'opened'")]
    assert sent == [("overdue", "log"), ("escalated", "mgr-mail"), ("escalated", "log")]


def test_two_workers_racing_take_each_level_once(conn: psycopg.Connection,
                                                 database: str) -> None:
    make_site(conn, LADDER_RECEIVERS)
    for i in range(2, 7):
        conn.execute("INSERT INTO devices (site_id, id, type_id, name) VALUES ('rv', %s,"
                     " 'water_pump', %s)", (f"pump-{i}", f"{i}号水泵"))
    tickets = [open_ticket(conn, ref=f"x:{i}", device=f"pump-{i}") for i in range(1, 7)]
    assert len(set(tickets)) == 6
    start = threading.Barrier(2)
    results: list[list[Escalated]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(database, row_factory=dict_row) as own:
                start.wait(10)
                with own.transaction():
                    results.append(escalate_due(own, at(3 * 3600)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    taken = sorted((e.id, e.deadline, e.level) for r in results for e in r)
    assert taken == sorted((wo, "respond", level) for wo in tickets for level in range(4))
    counts = conn.execute(
        "SELECT receiver, count(*) AS n FROM notification_outbox WHERE event = 'escalated'"
        " GROUP BY receiver ORDER BY receiver").fetchall()
    assert [(c["receiver"], c["n"]) for c in counts] == [
        ("duty", 6), ("eng-manager", 6), ("pm-mail", 6)]
    lines = conn.execute("SELECT count(*) AS n FROM work_order_history"
                         " WHERE action IN ('overdue', 'escalated')").fetchone()
    assert lines["n"] == 6 * 4


def test_an_unanswered_complaint_escalates_and_is_marked_overdue(
        conn: psycopg.Connection) -> None:
    make_site(conn, [
        {"name": "cs", "channel": "webhook", "url": HOOK.format("cs"),
         "audiences": ["customer_service"]},
        {"name": "quality", "channel": "email", "to": ["quality@company.example"],
         "audiences": ["quality"], "subjects": ["complaint"]},
        {"name": "log", "channel": "webhook", "url": HOOK.format("log"),
         "subjects": ["complaint"]},
    ])
    late = open_complaint(conn)  # answer due in 3 days
    answered = open_complaint(conn, number="TS-2026-0002")
    closed = open_complaint(conn, number="TS-2026-0003")
    conn.execute("UPDATE complaints SET state = 'answered', answered_at = %s, answer = 'ok'"
                 " WHERE id = %s", (at(3600), answered))
    conn.execute("UPDATE complaints SET state = 'closed', resolution = 'invalid',"
                 " close_reason = 'duplicate', closed_at = %s WHERE id = %s", (at(60), closed))
    conn.commit()
    three_days = 3 * 86400
    assert escalate(conn, three_days - 1) == []
    assert escalate(conn, three_days) == [("complaint", late, "answer", 0),
                                          ("complaint", late, "answer", 1)]
    assert escalate(conn, three_days + 2 * 3600) == [("complaint", late, "answer", 2)]
    assert escalate(conn, three_days + 86400) == [("complaint", late, "answer", 3)]
    assert escalate(conn, three_days + 5 * 86400) == []
    flags = {r["id"]: r["overdue"] for r in conn.execute("SELECT id, overdue FROM complaints")}
    assert flags == {late: True, answered: False, closed: False}
    lines = history(conn, "complaint_history")
    assert [a for a, _ in lines] == ["overdue", "escalated", "escalated", "escalated"]
    assert "told no receiver configured" in lines[2][1]  # project_manager: nobody set up
    sent = [(r["event"], r["receiver"], r["payload"].get("level"))
            for r in outbox_rows(conn)]
    assert sent == [("overdue", "log", None), ("escalated", "cs", 1), ("escalated", "log", 1),
                    ("escalated", "log", 2), ("escalated", "quality", 3),
                    ("escalated", "log", 3)]
    [mail] = outbox_rows(conn, "receiver = 'quality'")
    assert mail["payload"]["title"] == "【投诉升级·第3级】TS-2026-0001（一般）"
    assert mail["payload"]["link"].endswith(f"/api/v1/complaints/{late}")
    # the complainant's name and phone are masked in what leaves the building
    assert "投诉人：王** 3-1201 138****5678" in mail["payload"]["lines"]
    assert mail["payload"]["complaint"]["complainant_phone"] == "138****5678"


def test_the_worker_takes_an_escalation_to_a_webhook_and_an_smtp_server(
        conn: psycopg.Connection, database: str) -> None:
    from caretaker.settings import Settings

    with HttpReceiver("webhook") as hook, smtp_server() as box:
        make_site(conn, [
            {"name": "duty-hook", "channel": "webhook", "url": hook.url,
             "audiences": ["engineer_on_duty"]},
            {"name": "duty-mail", "channel": "email", "to": ["duty@riverside.example"],
             "audiences": ["engineer_on_duty"]},
        ])
        wo = open_ticket(conn)
        clock = FakeClock(T0 + timedelta(minutes=16))
        stop = threading.Event()
        settings = Settings(database_url=database, smtp_host=box.host, smtp_port=box.port)
        worker = threading.Thread(target=run_rules, args=(settings,),
                                  kwargs={"clock": clock, "stop": stop}, daemon=True)
        worker.start()
        try:
            wait_until(lambda: hook.received and box.mails, 30, "the escalation to arrive")
        finally:
            stop.set()
            worker.join(30)
    assert [r.body["event"] for r in hook.received] == ["work_order.escalated"]
    assert hook.received[0].body["level"] == 1
    [mail] = box.mails
    assert mail["Subject"] == f"【工单升级·第1级】#{wo} 水泵振动超限"
