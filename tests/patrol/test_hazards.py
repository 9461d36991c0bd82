"""Hazards from patrols (安全隐患 → 整改) and equipment findings with the item's severity."""

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
from caretaker.db import make_pool
from caretaker.scheduler import run_job_once
from caretaker.settings import Settings
from caretaker.site_config import example_document
from rules.patrol import engine
from rules.patrol.checklist import findings
from rules.patrol.engine import patrol_jobs
from stack.app import load_site
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    Publisher,
    forget_session,
    ingest_settings,
    running_worker,
    wait_until,
)
from tests.patrol.helpers import OPTIONS, T0, scan, site_doc, tick, value

M = timedelta(minutes=1)


def tickets(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    conn.commit()
    return [dict(r) for r in conn.execute("SELECT * FROM work_orders ORDER BY id")]


def test_findings_name_item_value_range_and_severity() -> None:
    checklist = [
        {"item": "outlet pressure", "reading": "p", "min": 0.3, "max": 0.6, "unit": "MPa",
         "severity": "critical"},
        {"item": "bearing", "reading": "t", "max": 70, "unit": "degC"},
        {"item": "no leaks", "reading": "dry", "expect": True, "severity": "minor"},
        {"item": "level", "reading": "l", "min": 80, "unit": "%", "severity": "urgent"}]
    got = findings(checklist, {"p": 0.21, "t": 75, "dry": "no", "l": 50}, "ok")
    assert [(p["item"], p["value"], p["expected"], p["severity"]) for p in got] == [
        ("outlet pressure", 0.21, "0.3–0.6 MPa", "critical"),
        ("bearing", 75.0, "≤ 70 degC", "major"),          # no severity: major
        ("no leaks", "no", "yes", "minor"),
        ("level", 50.0, "≥ 80 %", "major")]               # not a severity: major
    assert engine.checklist.worst(got) == "critical"
    assert engine.checklist.describe(got[0]) == "outlet pressure: 0.21 MPa, expected 0.3–0.6 MPa"
    # a bare `abnormal` with every answer in range: the default; with answers: theirs alone
    assert engine.checklist.worst(findings(checklist, {"p": 0.4}, "abnormal")) == "major"
    minor = findings(checklist, {"dry": False}, "abnormal")
    assert engine.checklist.worst(minor) == "minor"


def test_equipment_finding_ticket_has_the_items_severity(conn: psycopg.Connection[Any]) -> None:
    doc = site_doc()
    [equipment] = [c for c in doc["checkpoints"] if c["id"] == "e1"]
    equipment["checklist"] = [
        {"item": "pressure", "reading": "pressure", "min": 0.3, "max": 0.6, "unit": "MPa",
         "severity": "critical"},
        {"item": "no leaks", "reading": "no_leaks", "expect": True, "severity": "minor"}]
    load_site(conn, doc, now=T0 - timedelta(hours=1))
    conn.commit()
    scan(conn, "QR-E1", T0, readings={"pressure": 0.45, "no_leaks": False})
    tick(conn, T0 + M)
    [wo] = tickets(conn)
    assert (wo["source"], wo["category"], wo["device_id"], wo["severity"], wo["priority"]) == (
        "inspection", "设备", "d1", "minor", 3)
    assert wo["checkpoint_id"] == "e1" and wo["zone_id"] == "z"
    assert wo["description"].startswith("no leaks: no, expected yes")
    # a worse finding on the same pump joins its live ticket and raises it
    scan(conn, "QR-E1", T0 + 5 * M, readings={"pressure": 0.21, "no_leaks": True})
    tick(conn, T0 + 6 * M)
    [wo] = tickets(conn)
    assert (wo["severity"], wo["priority"]) == ("critical", 1)
    rows = conn.execute("SELECT kind, severity, problems FROM inspection_findings ORDER BY id"
                        ).fetchall()
    assert [(r["kind"], r["severity"]) for r in rows] == [("equipment", "minor"),
                                                          ("equipment", "critical")]
    assert rows[1]["problems"][0]["expected"] == "0.3–0.6 MPa"


def test_abnormal_scan_anywhere_opens_one_rectification_ticket(
        conn: psycopg.Connection[Any], load: Callable[..., None]) -> None:
    load()
    scan(conn, "TAG-A", T0, note="ok here")  # an ok scan is no hazard, whatever its note
    hazard = scan(conn, "TAG-B", T0 + M, result="abnormal", note="fire door propped open")
    tick(conn, T0 + 2 * M)
    [wo] = tickets(conn)
    assert (wo["source"], wo["category"], wo["checkpoint_id"], wo["zone_id"]) == (
        "patrol", "整改", "b", "z")
    assert wo["description"] == "fire door propped open" and wo["device_id"] is None
    assert wo["title"] == "Hazard 安全隐患 at B: fire door propped open"
    assert (wo["severity"], wo["channel"], wo["state"]) == ("major", "app", "open")
    refs = conn.execute("SELECT source, source_ref FROM work_order_refs").fetchall()
    assert refs == [{"source": "patrol", "source_ref": f"scan:{hazard}"}]
    # the same scan again (an offline batch sent twice, a redelivery): nothing new
    conn.execute("DELETE FROM scan_checks WHERE scan_id = %s", (hazard,))
    engine.process_scans(conn, [hazard], T0 + 3 * M, options=OPTIONS)
    scan(conn, "TAG-B", T0 + M, result="abnormal", note="fire door propped open",
         scan_id=hazard)
    tick(conn, T0 + 4 * M)
    assert len(tickets(conn)) == 1
    assert value(conn, "SELECT count(*) AS n FROM inspection_findings") == 1


def test_hazards_at_two_checkpoints_are_two_tickets(conn: psycopg.Connection[Any],
                                                    load: Callable[..., None]) -> None:
    load()
    scan(conn, "TAG-A", T0, result="abnormal", note="roof door unlocked 天台门未锁")
    scan(conn, "TAG-B", T0 + M, result="abnormal", note="fire door propped open")
    tick(conn, T0 + 2 * M)
    # a repeat fault is a device's; two guards' reports are two pieces of work
    assert [(w["checkpoint_id"], w["repeat_of"]) for w in tickets(conn)] == [("a", None),
                                                                            ("b", None)]


def test_hazard_at_an_unknown_tag_is_not_lost(conn: psycopg.Connection[Any],
                                              load: Callable[..., None]) -> None:
    load()
    scan(conn, "TAG-NEW", T0, result="abnormal", note="broken glass by the bins")
    tick(conn, T0 + M)
    [wo] = tickets(conn)
    assert wo["checkpoint_id"] is None and wo["category"] == "整改"
    assert wo["title"] == "Hazard 安全隐患 at unknown tag TAG-NEW: broken glass by the bins"


@pytest.mark.e2e
def test_roof_door_hazard_over_mqtt_opens_a_ticket_once(
        database: str, mqtt: Broker, conn: psycopg.Connection[Any], client: TestClient,
        make_token: Callable[..., dict[str, str]]) -> None:
    """Guard handheld → broker → ingest → patrol engine → ticket, and the API lists it."""
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    load_site(conn, example_document(), now=now)
    conn.commit()
    settings = Settings(database_url=database)
    pool = make_pool(settings, max_size=2)
    clock = FakeClock(now)
    hazard = str(uuid.uuid4())
    body = {"scan_id": hazard, "tag": "NFC-RS-0010", "ts": int(now.timestamp() * 1000),
            "result": "abnormal", "note": "天台门未锁"}
    topic = "caretaker/v1/riverside/guards/g-li/scans"

    def stored(n: int) -> bool:
        conn.commit()
        return bool(value(conn, "SELECT count(*) AS n FROM scans") == n)

    def patrol() -> None:
        for job in patrol_jobs(settings):
            assert run_job_once(pool, job, clock)

    ingest = ingest_settings(database, mqtt)
    try:
        with running_worker(ingest):
            handheld = Publisher(mqtt.add("guard", "g-li", "riverside"), v5=True)
            handheld.publish(topic, json.dumps(body, ensure_ascii=False))
            assert wait_until(lambda: stored(1))
            patrol()
            [wo] = tickets(conn)
            # sent again (the handheld never saw the PUBACK), then an ordinary scan after it
            handheld.publish(topic, json.dumps(body, ensure_ascii=False))
            handheld.publish(topic, json.dumps({**body, "scan_id": str(uuid.uuid4()),
                                                "result": "ok", "note": None,
                                                "tag": "NFC-RS-0005"}))
            assert wait_until(lambda: stored(2))
            clock.advance(seconds=5)
            patrol()
            handheld.client.disconnect()
    finally:
        pool.close()
        forget_session(ingest)
    assert tickets(conn) == [wo]
    assert (wo["source"], wo["category"], wo["checkpoint_id"], wo["zone_id"]) == (
        "patrol", "整改", "cp-roof-a", "roof")
    assert wo["description"] == "天台门未锁" and wo["source_ref"] == f"scan:{hazard}"
    assert "Tower A roof door" in wo["title"]
    viewer = make_token("viewer", site="riverside")
    page = client.get("/api/v1/scans", params={"site": "riverside", "result": "abnormal"},
                      headers=viewer).json()
    [item] = page["items"]
    assert (item["scan_id"], item["note"], item["work_order_id"], item["finding_kind"]) == (
        hazard, "天台门未锁", wo["id"], "hazard")
    normal = client.get("/api/v1/scans", params={"site": "riverside", "result": "normal"},
                        headers=viewer).json()
    assert [s["tag"] for s in normal["items"]] == ["NFC-RS-0005"]
    assert normal["items"][0]["work_order_id"] is None
    assert client.get("/api/v1/scans", params={"result": "broken"},
                      headers=viewer).status_code == 422
