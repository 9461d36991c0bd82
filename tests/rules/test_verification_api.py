"""Verifications on the example site through the API: what a guard and a supervisor see,
results by hand, nobody on duty, a fault whose alarm already has a ticket, bad sections."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.site_config import SiteConfigError, example_document
from ingest.payloads import Scan
from ingest.store import store_scans
from rules import engine
from rules.patrol import engine as patrol
from rules.verification_store import escalate_due
from stack.app import load_site

SITE = "riverside"
RUNS = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # 13:00 in Shanghai: day patrol, gate post


def riverside(conn: psycopg.Connection[Any], *, receivers: bool = False,
              **verification: Any) -> dict[str, Any]:
    doc: dict[str, Any] = example_document()
    for s in doc["schedules"]:
        s["effective_from"] = "2026-11-22"
    doc["verification"].update(verification)
    if not receivers:
        doc["notifications"]["receivers"] = []
    load_site(conn, doc, now=RUNS - timedelta(hours=1))
    with conn.transaction():
        patrol.materialize(conn, RUNS - timedelta(hours=1))
    conn.commit()
    return doc


def scan(conn: psycopg.Connection[Any], guard: str, tag: str, when: datetime,
         result: str = "ok") -> None:
    store_scans(conn, SITE, guard, [Scan(uuid.uuid4(), tag, when, result)],  # type: ignore[arg-type]
                received_at=when)
    with conn.transaction():
        patrol.consume_scans(conn, when)
    conn.commit()


def reading(conn: psycopg.Connection[Any], device: str, when: datetime, **values: float
            ) -> None:
    """What the ingest and the rules worker do with one telemetry message."""
    conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('telemetry', %s)",
                 (json.dumps([{"site": SITE, "device": device, "metric": m, "value": v,
                               "ts": int(when.timestamp() * 1000)}
                              for m, v in values.items()]),))
    with conn.transaction():
        engine.consume(conn, when)
    conn.commit()


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    conn.commit()
    return [dict(r) for r in conn.execute(query, params)]  # type: ignore[arg-type]


def test_guards_see_their_own_and_record_results_supervisors_see_all(
        conn: psycopg.Connection[Any], client: TestClient, api_clock: FakeClock,
        make_token: Callable[..., dict[str, str]]) -> None:
    riverside(conn)
    scan(conn, "g-wang", "NFC-RS-0001", RUNS + timedelta(minutes=7))     # main gate
    scan(conn, "g-li", "NFC-RS-0005", RUNS + timedelta(minutes=1))       # Tower A lobby
    reading(conn, "door-pump-room", RUNS + timedelta(minutes=9), forced=1)
    # the floor sensor goes off too, held 10 s: one more verification at the same door
    reading(conn, "leak-pump-room", RUNS + timedelta(minutes=9), water=1)
    reading(conn, "leak-pump-room", RUNS + timedelta(minutes=9, seconds=11), water=1)
    vers = rows(conn, "SELECT * FROM verifications ORDER BY id")
    assert [(v["rule_id"], v["guard_id"]) for v in vers] == [
        ("door-forced", "g-wang"), ("pump-room-flood", "g-wang")]
    door, flood = vers
    assert flood["due_by"] - flood["requested_at"] == timedelta(minutes=5)

    wang = make_token("guard", site=SITE, guard="g-wang")
    li = make_token("guard", site=SITE, guard="g-li")
    boss = make_token("supervisor", site=SITE)
    api_clock.set(RUNS + timedelta(minutes=11))
    page = client.get(f"/api/v1/verifications?site={SITE}&state=open", headers=wang).json()
    assert page["total"] == 2
    assert set(page["items"][0]) == {"id", "alarm_id", "checkpoint_id", "checkpoint_name",
                                     "due_by", "title", "guard_id", "state"}
    first = page["items"][0]
    assert (first["id"], first["checkpoint_id"], first["checkpoint_name"], first["state"]) == (
        flood["id"], "cp-pump-room-door", "Pump room door 水泵房门", "open")  # due soonest
    assert first["title"] == ("Water on the pump room floor 水泵房地面积水"
                              " · Pump room floor 水泵房地面")
    assert client.get(f"/api/v1/verifications?site={SITE}&state=open",
                      headers=li).json()["total"] == 0
    assert client.get(f"/api/v1/verifications?site={SITE}&guard=g-wang",
                      headers=li).json()["total"] == 0  # a guard's own, whatever is asked
    assert client.get(f"/api/v1/verifications?site={SITE}", headers=boss).json()["total"] == 2
    assert client.get("/api/v1/verifications?site=elsewhere", headers=boss).status_code == 403
    assert client.get(f"/api/v1/verifications/{door['id']}", headers=li).status_code == 404

    # another guard cannot answer it; the guard sent can, once
    url = f"/api/v1/verifications/{door['id']}/result"
    assert client.post(url, json={"result": "confirmed"}, headers=li).status_code == 404
    assert client.post(url, json={"result": "maybe"}, headers=wang).status_code == 422
    got = client.post(url, json={"result": "confirmed", "note": "锁被撬坏"}, headers=wang)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["state"], body["result_by"], body["note"]) == ("confirmed", "guard:g-wang",
                                                                "锁被撬坏")
    [wo] = rows(conn, "SELECT * FROM work_orders WHERE source = 'verification'")
    assert (body["work_order_id"], wo["alarm_id"], wo["checkpoint_id"]) == (
        wo["id"], door["alarm_id"], "cp-pump-room-door")
    assert client.post(url, json={"result": "false_alarm"}, headers=wang).status_code == 409
    alarm = client.get(f"/api/v1/alarms/{door['alarm_id']}", headers=boss).json()
    assert alarm["verification"] == "confirmed" and alarm["work_order_id"] == wo["id"]
    assert [h["action"] for h in alarm["history"]][-1] == "verified_confirmed"

    # the flood's alarm (major) opened its own ticket at once; nobody verifies: that ticket
    # is the one the escalation names, no second one opens
    with conn.transaction():
        assert escalate_due(conn, flood["due_by"]) == 1
    [flood] = rows(conn, "SELECT * FROM verifications WHERE id = %s", flood["id"])
    [alarm_wo] = rows(conn, "SELECT * FROM work_orders WHERE source = 'alarm'")
    assert (flood["state"], flood["work_order_id"]) == ("not_verified", alarm_wo["id"])
    assert client.get(f"/api/v1/verifications?site={SITE}&state=open",
                      headers=boss).json()["total"] == 0


def test_nobody_on_duty_escalates_at_once(conn: psycopg.Connection[Any]) -> None:
    riverside(conn, receivers=True)
    # 03:30 in Shanghai, between two night rounds; g-zhang's last scan was 2 h ago (on_duty
    # is 1 h) and no run is under way
    night = datetime(2026, 11, 22, 19, 30, tzinfo=UTC)
    scan(conn, "g-zhang", "NFC-RS-0001", night - timedelta(hours=2))
    assert not rows(conn, "SELECT 1 FROM patrol_runs WHERE planned_start <= %s"
                          " AND planned_end >= %s", night, night)
    reading(conn, "door-pump-room", night, forced=1)
    [ver] = rows(conn, "SELECT * FROM verifications")
    assert (ver["guard_id"], ver["state"], ver["note"]) == (None, "not_verified",
                                                             "no guard on duty")
    [wo] = rows(conn, "SELECT * FROM work_orders")
    assert wo["source"] == "verification"
    sent = rows(conn, "SELECT receiver, event FROM notification_outbox"
                      " WHERE subject = 'verification'")
    # duty-room hears everything; the supervisor is addressed
    assert sorted((s["receiver"], s["event"]) for s in sent) == [
        ("duty-room", "overdue"), ("security-supervisor", "overdue")]


def test_a_guard_on_duty_without_a_scan_yet_is_sent_when_nobody_else_is(
        conn: psycopg.Connection[Any]) -> None:
    riverside(conn, receivers=True)
    # 20:00 in Shanghai: the night perimeter run starts; g-zhang has not scanned yet
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    reading(conn, "door-pump-room", start + timedelta(minutes=1), forced=1)
    [ver] = rows(conn, "SELECT * FROM verifications")
    assert (ver["guard_id"], ver["basis"], ver["distance"]) == ("g-zhang", "unknown", None)
    [run] = rows(conn, "SELECT schedule_id FROM patrol_runs WHERE id = %s", ver["run_id"])
    assert run["schedule_id"] == "night-perimeter-2h"
    # an abnormal scan there confirms it, and is no separate hazard report
    scan(conn, "g-zhang", "NFC-RS-0011", start + timedelta(minutes=4), result="abnormal")
    [ver] = rows(conn, "SELECT * FROM verifications")
    assert ver["state"] == "confirmed"
    assert [w["source"] for w in rows(conn, "SELECT source FROM work_orders")] == [
        "verification"]
    sent = rows(conn, "SELECT receiver, event, payload FROM notification_outbox"
                      " WHERE subject = 'verification' ORDER BY id")
    assert [(s["receiver"], s["event"]) for s in sent] == [
        ("duty-room", "opened"), ("guard-handhelds", "opened"), ("duty-room", "answered")]
    assert sent[1]["payload"]["title"].startswith("【告警核实】请前往核实：Door forced open")
    assert sent[2]["payload"]["verification"]["scan_id"] is not None


def test_a_door_opened_during_maintenance_sends_nobody(conn: psycopg.Connection[Any]) -> None:
    doc: dict[str, Any] = example_document()
    for s in doc["schedules"]:
        s["effective_from"] = "2026-11-22"
    doc["notifications"]["receivers"] = []
    # the lock is being replaced 13:00-14:00 (Shanghai): the alarm is muted, nobody is sent
    doc["maintenance_windows"] = [{"id": "lock", "device": "door-pump-room",
                                   "start": "2026-11-23T13:00:00", "end": "2026-11-23T14:00:00",
                                   "reason": "lock replaced 换锁"}]
    load_site(conn, doc, now=RUNS - timedelta(hours=1))
    conn.commit()
    scan(conn, "g-wang", "NFC-RS-0001", RUNS + timedelta(minutes=7))
    reading(conn, "door-pump-room", RUNS + timedelta(minutes=9), forced=1)
    [alarm] = rows(conn, "SELECT * FROM alarms")
    assert alarm["suppressed_by"] is not None and alarm["verification"] is None
    assert rows(conn, "SELECT 1 FROM verifications") == []


@pytest.mark.parametrize(("section", "words"), [
    ({"rules": [{"rule": "no-such-rule"}]}, "unknown rule(s) no-such-rule"),
    ({"distances": [["cp-gate-main", "cp-nowhere", 10]]}, "unknown checkpoint(s) cp-nowhere"),
    ({"adjacent_zones": [["pump-room", "atlantis"]]}, "unknown zone(s) atlantis"),
    ({"zone_step": 0}, "verification.zone_step"),
])
def test_a_bad_section_is_refused_naming_what_is_wrong(conn: psycopg.Connection[Any],
                                                        section: dict[str, Any],
                                                        words: str) -> None:
    doc: dict[str, Any] = example_document()
    doc["verification"].update(section)
    with pytest.raises(SiteConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_site(conn, doc, now=RUNS)
