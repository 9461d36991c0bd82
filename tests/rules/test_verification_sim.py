"""The simulated forced door: the guard the simulator walks to the door is the one the server
sends, and their scan confirms the alarm (the scans stored as the ingest stores them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from caretaker.site_config import example_document
from ingest.payloads import Scan
from ingest.store import store_scans
from rules import engine
from rules.patrol import engine as patrol
from simulators.guards import NONE, plan_scans
from simulators.responders import responses
from simulators.scenarios import Scenario, load_scenario, parse_fault
from simulators.stream import scans_as_events
from stack.app import load_site

START = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # 13:00 in Shanghai


def riverside(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    doc: dict[str, Any] = example_document()
    for s in doc["schedules"]:
        s["effective_from"] = "2026-11-22"
    load_site(conn, doc, now=START - timedelta(hours=1))
    with conn.transaction():
        patrol.materialize(conn, START - timedelta(hours=1))
    conn.commit()
    return doc


def store(conn: psycopg.Connection[Any], guard: str, payload: dict[str, Any]) -> None:
    when = datetime.fromtimestamp(payload["ts"] / 1000, UTC)
    store_scans(conn, "riverside", guard, [Scan(uuid.UUID(payload["scan_id"]), payload["tag"],
                                                when, payload["result"], {},
                                                payload.get("note"))], received_at=when)
    with conn.transaction():
        patrol.consume_scans(conn, when)
    conn.commit()


def test_the_packaged_scenario_forces_the_pump_room_door() -> None:
    scenario = load_scenario("door-forced")
    [fault] = scenario.faults
    assert (fault.kind, fault.devices, dict(fault.set), fault.start) == (
        "step", ("door-pump-room",), {"forced": 1}, 120)
    # seed 1: by 13:16 g-li's day patrol has reached Tower B's lobby (80 + 70 + 40 m from
    # the door via Tower C and the B2 stairs); g-wang was last at the east gate (420 m)
    answers = responses(example_document(), scenario, start=START + timedelta(minutes=14),
                        end=None, seed=1, rates=NONE)
    [answer] = answers
    alarm = START + timedelta(minutes=16)
    assert answer.guard_id == "g-li" and answer.payload["tag"] == "NFC-RS-0011"
    assert answer.time == alarm + timedelta(seconds=190 + 30)
    assert answer.payload["result"] == "abnormal"
    assert responses(example_document(), scenario, start=START, end=START + timedelta(minutes=1),
                     seed=1, rates=NONE) == []  # the run ends before the door is forced


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_simulated_guard_is_the_one_the_server_sends(conn: psycopg.Connection[Any],
                                                         seed: int) -> None:
    doc = riverside(conn)
    scenario = Scenario("door", (parse_fault({"kind": "step", "devices": "door-pump-room",
                                              "set": {"forced": 1}, "start": "14m"}),))
    alarm = START + timedelta(minutes=14)
    [answer] = responses(doc, scenario, start=START, end=None, seed=seed, rates=NONE)
    # what the simulated guards published in the day before the alarm
    for event in scans_as_events("riverside", plan_scans(
            doc, start=START - timedelta(days=1), end=alarm, seed=seed, rates=NONE)):
        when = datetime.fromtimestamp(event.time, UTC)
        if when <= alarm:
            store(conn, event.topic.split("/")[4], json.loads(event.payload))
    conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('telemetry', %s)",
                 (json.dumps([{"site": "riverside", "device": "door-pump-room",
                               "metric": "forced", "value": 1,
                               "ts": int(alarm.timestamp() * 1000)}]),))
    with conn.transaction():
        engine.consume(conn, alarm)
    conn.commit()
    [ver] = conn.execute("SELECT * FROM verifications").fetchall()
    assert ver["guard_id"] == answer.guard_id
    assert ver["distance"] is not None
    assert answer.time == alarm + timedelta(seconds=ver["distance"] + 30)
    store(conn, answer.guard_id, answer.payload)
    [ver] = conn.execute("SELECT * FROM verifications").fetchall()
    assert (ver["state"], ver["result_by"]) == ("confirmed", f"guard:{answer.guard_id}")
