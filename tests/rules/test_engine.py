"""The rules pipeline against a real database: alarms, dedup, races, crashes, the clock."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest
from psycopg.rows import dict_row

from rules import engine
from tests.rules.helpers import SITE, at, make_site, publish, publish_status, rows, run, tick
from tickets import work_orders


def test_fault_reading_raises_one_alarm_and_one_work_order(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=5.0)
    publish(conn, "pump-1", at(1), vibration=7.4)
    assert run(conn, at(1.2)) == 2
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert (alarm["device_id"], alarm["rule_id"], alarm["state"]) == ("pump-1", "vib-major",
                                                                      "active")
    assert alarm["first_value"] == 7.4
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert wo["alarm_id"] == alarm["id"] and alarm["work_order_id"] == wo["id"]
    assert wo["severity"] == "major" and wo["priority"] == 2
    assert wo["respond_by"] == at(1.2 + 30 * 60) and wo["resolve_by"] == at(1.2 + 24 * 3600)
    assert "7.4" in wo["description"]
    assert rows(conn, "SELECT * FROM ingest_events") == []


def test_flapping_across_the_clear_value_is_still_one_ticket(conn: psycopg.Connection) -> None:
    make_site(conn)
    for i, v in enumerate([7.2, 6.9, 7.3, 6.7, 7.5, 6.6, 7.2, 6.0, 7.3, 6.2, 7.8]):
        publish(conn, "pump-1", at(i), vibration=v)
        run(conn, at(i + 0.5))
    # 6.0 dipped below the clear value: the alarm cleared, then a repeat came within the
    # repeat period: the second alarm links to the one ticket
    alarms = rows(conn, "SELECT * FROM alarms ORDER BY id")
    tickets = rows(conn, "SELECT * FROM work_orders")
    assert len(tickets) == 1
    assert alarms[0]["count"] == 4 and alarms[0]["state"] == "cleared"
    assert [a["work_order_id"] for a in alarms] == [tickets[0]["id"]] * len(alarms)
    assert tickets[0]["repeat_count"] == len(alarms) - 1


def test_flapping_inside_the_band_is_one_alarm_and_one_ticket(conn: psycopg.Connection) -> None:
    make_site(conn)
    for i, v in enumerate([7.2, 6.9, 7.3, 6.7, 7.5, 6.6, 7.2]):
        publish(conn, "pump-1", at(i), vibration=v)
    run(conn, at(10))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert alarm["state"] == "active" and alarm["count"] == 4 and alarm["last_value"] == 7.2
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1


def test_clear_condition_clears_alarm_and_notes_ticket(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=9)
    publish(conn, "pump-1", at(5), vibration=6.4)
    run(conn, at(6))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert alarm["state"] == "cleared" and alarm["cleared_by"] == "system"
    assert wo["state"] == "open" and wo["alarm_cleared_at"] == at(6)
    actions = [h["action"] for h in rows(conn, "SELECT action FROM work_order_history"
                                               " ORDER BY id")]
    assert actions == ["opened", "alarm_cleared"]


def test_two_workers_racing_make_one_alarm(database: str) -> None:
    with psycopg.connect(database, row_factory=dict_row) as setup:
        make_site(setup)
        for i in range(6):  # six batches with the same fault: both workers get some
            publish(setup, "pump-2", at(i), vibration=8 + i / 10)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(database, row_factory=dict_row) as c:
                barrier.wait()
                for _ in range(6):
                    with c.transaction():
                        engine.consume(c, at(10), limit=1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with psycopg.connect(database, row_factory=dict_row) as c:
        assert len(rows(c, "SELECT * FROM alarms")) == 1
        assert len(rows(c, "SELECT * FROM work_orders")) == 1
        assert rows(c, "SELECT * FROM ingest_events") == []


def test_two_clocks_racing_on_a_hold_time_make_one_alarm(database: str) -> None:
    with psycopg.connect(database, row_factory=dict_row) as setup:
        make_site(setup)
        publish(setup, "pump-3", at(0), vib_held=9)
        run(setup, at(0.5))
        assert rows(setup, "SELECT * FROM alarms") == []
    barrier = threading.Barrier(2)

    def clock() -> None:
        with psycopg.connect(database, row_factory=dict_row) as c:
            barrier.wait()
            tick(c, at(30))

    threads = [threading.Thread(target=clock) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with psycopg.connect(database, row_factory=dict_row) as c:
        assert len(rows(c, "SELECT * FROM alarms")) == 1
        assert len(rows(c, "SELECT * FROM work_orders")) == 1


def test_failure_between_alarm_and_work_order_resumes_to_one_of_each(
        conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=9)

    def crash(*args: object, **kwargs: object) -> int:
        raise psycopg.OperationalError("connection lost after the alarm insert")

    monkeypatch.setattr(work_orders, "open_work_order", crash)
    with pytest.raises(psycopg.OperationalError):
        run(conn, at(1))
    monkeypatch.undo()
    assert rows(conn, "SELECT * FROM alarms") == []  # rolled back with the outbox row kept
    assert len(rows(conn, "SELECT * FROM ingest_events")) == 1
    run(conn, at(2))
    assert len(rows(conn, "SELECT * FROM alarms")) == 1
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1


KILLER = """
import os, sys
from datetime import UTC, datetime
import psycopg
from psycopg.rows import dict_row
from rules import alarms, engine
from tickets import work_orders
real = alarms.raise_alarm
def raise_then_die(*a, **k):
    result = real(*a, **k)
    os._exit(9)  # the process dies after the alarm insert, before the work order
alarms.raise_alarm = raise_then_die
with psycopg.connect(sys.argv[1], row_factory=dict_row) as conn:
    with conn.transaction():
        engine.consume(conn, datetime(2026, 11, 23, 8, 0, 1, tzinfo=UTC))
"""


def test_process_killed_between_alarm_and_work_order(conn: psycopg.Connection,
                                                     database: str) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=9)
    done = subprocess.run([sys.executable, "-c", KILLER, database], timeout=60)
    assert done.returncode == 9
    assert rows(conn, "SELECT * FROM alarms") == []
    run(conn, at(2))
    assert len(rows(conn, "SELECT * FROM alarms")) == 1
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1
    run(conn, at(3))
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1


def test_hold_time_fires_from_the_clock_and_state_survives_restart(database: str) -> None:
    with psycopg.connect(database, row_factory=dict_row) as c:
        make_site(c)
        publish(c, "pump-1", at(0), vib_held=9)
        run(c, at(0.1))
        tick(c, at(29))
        assert rows(c, "SELECT * FROM alarms") == []
    # a "restarted" worker: a new connection, nothing in memory
    with psycopg.connect(database, row_factory=dict_row) as c:
        tick(c, at(30))
        [alarm] = rows(c, "SELECT * FROM alarms")
        assert alarm["raised_at"] == at(30) and alarm["last_value"] == 9


def test_hold_time_interrupted_raises_nothing(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vib_held=9)
    publish(conn, "pump-1", at(20), vib_held=5)
    run(conn, at(21))
    tick(conn, at(31))
    assert rows(conn, "SELECT * FROM alarms") == []
    assert rows(conn, "SELECT * FROM rule_state") == []


def test_silent_device_alarms_on_time_without_messages(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=3)
    conn.execute("UPDATE devices SET last_seen = %s", (at(0),))
    conn.commit()
    run(conn, at(0.1))
    tick(conn, at(300.5))  # timeout 300 s, plus last_seen's one-second precision
    assert rows(conn, "SELECT * FROM alarms") == []
    tick(conn, at(301))
    raised = rows(conn, "SELECT device_id, rule_id, raised_at FROM alarms ORDER BY device_id")
    assert [(a["device_id"], a["raised_at"]) for a in raised] == [
        (d, at(301)) for d in ("meter-main", "pump-1", "pump-2", "pump-3")]
    tick(conn, at(301.5))
    assert len(rows(conn, "SELECT * FROM alarms")) == 4
    # pump-1 speaks again: its offline alarm clears on the next tick
    publish(conn, "pump-1", at(302), vibration=3)
    run(conn, at(302))
    tick(conn, at(302.5))
    states = {a["device_id"]: a["state"] for a in rows(conn, "SELECT * FROM alarms")}
    assert states["pump-1"] == "cleared" and states["pump-2"] == "active"


def test_last_will_raises_offline_at_once(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish_status(conn, "pump-2", at(10), "offline")
    run(conn, at(10.2))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert alarm["device_id"] == "pump-2" and "Last Will" in alarm["message"]
    publish_status(conn, "pump-2", at(20), "online", source="status")
    run(conn, at(20.1))
    assert rows(conn, "SELECT state FROM alarms")[0]["state"] == "cleared"


def test_maintenance_window_suppresses_then_ticket_opens_when_it_ends(
        conn: psycopg.Connection) -> None:
    from rules.config import load_maintenance_windows
    from rules.maintenance import MaintenanceWindow

    make_site(conn)
    load_maintenance_windows(conn, SITE, [MaintenanceWindow.model_validate(
        {"id": "mw-1", "device": "pump-1", "start": at(-60).isoformat(),
         "end": at(120).isoformat(), "reason": "bearing replacement"})], now=at(0))
    conn.commit()
    publish(conn, "pump-1", at(0), vibration=9)
    publish(conn, "pump-2", at(0), vibration=9)
    run(conn, at(1))
    alarms = {a["device_id"]: a for a in rows(conn, "SELECT * FROM alarms")}
    assert alarms["pump-1"]["suppressed_by"] == "maintenance:mw-1"
    assert alarms["pump-1"]["work_order_id"] is None
    assert alarms["pump-2"]["suppressed_by"] is None and alarms["pump-2"]["work_order_id"]
    tick(conn, at(119))
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1
    tick(conn, at(120))  # the window is over and pump-1 still vibrates: now it is a ticket
    assert len(rows(conn, "SELECT * FROM work_orders")) == 2
    [a1] = rows(conn, "SELECT * FROM alarms WHERE device_id = 'pump-1'")
    assert a1["suppressed_by"] == "maintenance:mw-1" and a1["suppression_ended_at"] == at(120)


def test_inhibition_by_mains_lost(conn: psycopg.Connection) -> None:
    make_site(conn)
    publish(conn, "meter-main", at(0), commit=False, voltage=0)
    publish(conn, "pump-1", at(0), vibration=9)
    publish_status(conn, "pump-2", at(0), "offline")
    run(conn, at(1))
    alarms = {(a["device_id"], a["rule_id"]): a for a in rows(conn, "SELECT * FROM alarms")}
    mains = alarms[("meter-main", "mains-lost")]
    assert mains["suppressed_by"] is None and mains["work_order_id"]
    assert alarms[("pump-1", "vib-major")]["suppressed_by"] == f"inhibited:{mains['id']}"
    assert alarms[("pump-2", "offline")]["suppressed_by"] == f"inhibited:{mains['id']}"
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1
    # power back: the inhibitor clears; the pump still vibrating now gets its ticket
    publish(conn, "meter-main", at(60), voltage=400)
    run(conn, at(61))
    tick(conn, at(61.5))
    assert len(rows(conn, "SELECT * FROM work_orders")) == 3


def test_device_override_and_type_scope(conn: psycopg.Connection) -> None:
    make_site(conn)
    conn.execute("UPDATE devices SET overrides = %s WHERE id = 'pump-3'",
                 ('{"vib-major": {"threshold": 10, "clear": 9}}',))
    conn.commit()
    publish(conn, "pump-3", at(0), vibration=9.5)
    publish(conn, "meter-main", at(0), vibration=50)  # not a pump: the rule does not apply
    run(conn, at(1))
    assert rows(conn, "SELECT * FROM alarms") == []
    publish(conn, "pump-3", at(2), vibration=10)
    run(conn, at(3))
    assert len(rows(conn, "SELECT * FROM alarms")) == 1


def test_manual_clear_lets_the_rule_raise_again(conn: psycopg.Connection) -> None:
    from rules import alarms

    make_site(conn)
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))
    [a] = rows(conn, "SELECT * FROM alarms")
    with conn.transaction():
        alarms.acknowledge(conn, a["id"], actor="eng-li", now=at(2))
        alarms.clear_by_hand(conn, a["id"], actor="eng-li", now=at(3), note="sensor reseated")
    publish(conn, "pump-1", at(4), vibration=9.2)
    run(conn, at(5))
    raised = rows(conn, "SELECT state FROM alarms ORDER BY id")
    assert [r["state"] for r in raised] == ["cleared", "active"]
    history = [h["action"] for h in rows(conn, "SELECT action FROM alarm_history"
                                               " WHERE alarm_id = %s ORDER BY id", a["id"])]
    assert history == ["raised", "acknowledged", "cleared"]


def test_unprocessable_batch_is_dead_lettered_not_blocking(conn: psycopg.Connection) -> None:
    make_site(conn)
    conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('telemetry', %s)",
                 ('[{"site": "rs", "device": "pump-1", "value": 9}]',))  # no metric, no ts
    conn.commit()
    publish(conn, "pump-2", at(0), vibration=9)
    assert run(conn, at(1)) == 2
    [dead] = rows(conn, "SELECT * FROM dead_letters")
    assert dead["source"] == "rules" and "KeyError" in dead["reason"]
    assert [a["device_id"] for a in rows(conn, "SELECT * FROM alarms")] == ["pump-2"]
    assert rows(conn, "SELECT * FROM ingest_events") == []


def test_flapping_with_clear_hold_is_one_alarm_even_below_the_clear_value(
        conn: psycopg.Connection) -> None:
    make_site(conn, rules=[{"id": "vib", "metric": "vibration", "device_type": "water_pump",
                            "op": ">=", "threshold": 7.1, "clear": 6.5, "clear_for": "1m"}])
    for i, v in enumerate([9, 5, 9, 5, 9, 5, 9, 5]):
        publish(conn, "pump-1", at(i * 10), vibration=v)
        run(conn, at(i * 10 + 1))
        tick(conn, at(i * 10 + 2))
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert alarm["state"] == "active" and alarm["count"] == 4
    assert len(rows(conn, "SELECT * FROM work_orders")) == 1
    tick(conn, at(70 + 60))  # low since 70 s: the clear hold runs out at 130 s
    assert rows(conn, "SELECT state FROM alarms")[0]["state"] == "cleared"
