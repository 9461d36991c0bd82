"""Calibration checks end to end: scans through POST /api/v1/scans, the patrol engine, the
real database's telemetry, calibration tickets, and GET /api/v1/calibration-checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.site_config import SiteConfigError, example_document
from ingest.payloads import datetime_to_ms
from ingest.store import store_telemetry
from stack.app import load_site
from tests.patrol.helpers import T0, site_doc, tick

M = timedelta(minutes=1)
Headers = Callable[..., dict[str, str]]
LINK = {"checkpoint": "e1", "reading": "pressure", "metric": "outlet_pressure",
        "tolerance": 0.05, "repeat": 2, "within": "10m"}


def load(conn: psycopg.Connection[Any], **link: Any) -> None:
    load_site(conn, {**site_doc(), "calibration": [{**LINK, **link}]}, now=T0 - 60 * M)
    conn.commit()


def sensor(conn: psycopg.Connection[Any], at: datetime, value: float, *,
           device: str = "d1", metric: str = "outlet_pressure") -> None:
    """A reading stored as the ingest stores it (into whatever `telemetry` is built on)."""
    store_telemetry(conn, [("t1", device, datetime_to_ms(at) * 1000, metric, value, None)])
    conn.commit()


def gauge(client: TestClient, headers: dict[str, str], at: datetime, pressure: Any,
          **extra: Any) -> str:
    """A technician's equipment scan at e1 with a pressure reading, over HTTP."""
    scan_id = str(uuid.uuid4())
    body = {"scan_id": scan_id, "tag": "QR-E1", "ts": datetime_to_ms(at),
            "readings": {"pressure": pressure, "no_leaks": True}, **extra}
    r = client.post("/api/v1/scans?site=t1&guard=g1", json=body, headers=headers)
    assert r.status_code == 202 and r.json()["stored"] == 1, r.text
    return scan_id


def checks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    conn.commit()
    return [dict(r) for r in conn.execute("SELECT * FROM calibration_checks ORDER BY scan_time")]


def tickets(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    conn.commit()
    return [dict(r) for r in conn.execute(
        "SELECT * FROM work_orders WHERE source = 'calibration' ORDER BY id")]


def history(conn: psycopg.Connection[Any], wo_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        "SELECT action, note FROM work_order_history WHERE work_order_id = %s ORDER BY id",
        (wo_id,))]


def test_mismatch_twice_opens_one_ticket_naming_both_values(
        client: TestClient, conn: psycopg.Connection[Any], api_clock: FakeClock,
        make_token: Headers) -> None:
    load(conn)
    g1 = make_token("guard", site="t1", guard="g1")
    api_clock.set(T0 + 2 * 60 * M)
    # day 1: the sensor says 0.40 MPa; the gauge 0.52 (beyond ±0.05): one disagreement
    sensor(conn, T0 - 3 * M, 0.40)
    sensor(conn, T0 + 20 * M, 0.30)   # further from the scan than the 0.40: not used
    gauge(client, g1, T0, 0.52)
    tick(conn, T0 + M)
    [first] = checks(conn)
    assert (first["outcome"], first["agreed"], first["manual_value"], first["sensor_value"],
            first["sensor_time"], first["streak"]) == (
        "disagreed", False, 0.52, 0.40, T0 - 3 * M, 1)
    assert first["difference"] == pytest.approx(0.12) and first["allowed"] == 0.05
    assert first["device_id"] == "d1" and first["guard_id"] == "g1"
    assert tickets(conn) == []
    # day 2: again → the second disagreement in a row opens a calibration ticket
    day2 = T0 + 24 * 60 * M
    api_clock.set(day2 + 60 * M)
    sensor(conn, day2 + 2 * M, 0.41)
    gauge(client, g1, day2, 0.53)
    tick(conn, day2 + 3 * M)
    [wo] = tickets(conn)
    assert (wo["device_id"], wo["severity"], wo["state"], wo["checkpoint_id"], wo["zone_id"],
            wo["category"], wo["rule_id"]) == (
        "d1", "minor", "open", "e1", "z", "设备", "calibration:outlet_pressure")
    assert "gauge 0.53" in wo["title"] and "sensor 0.41" in wo["title"]
    # each disagreement in the site's local time, both values, the difference and tolerance
    assert ("2026-11-23 14:00: reading 0.52 vs sensor 0.4 (difference +0.12, tolerance ±0.05)"
            " by g1") in wo["description"]
    assert "2 times in a row" in wo["description"]
    second = checks(conn)[1]
    assert (second["streak"], second["work_order_id"]) == (2, wo["id"])
    # day 3: a third disagreement is noted on the live ticket, not a second ticket
    day3 = day2 + 24 * 60 * M
    api_clock.set(day3 + 60 * M)
    sensor(conn, day3, 0.40)
    gauge(client, g1, day3 + M, 0.55)
    tick(conn, day3 + 2 * M)
    assert [t["id"] for t in tickets(conn)] == [wo["id"]]
    # day 4: the gauge agrees again (replaced): recorded, and noted on the ticket
    day4 = day3 + 24 * 60 * M
    api_clock.set(day4 + 60 * M)
    sensor(conn, day4, 0.40)
    gauge(client, g1, day4 + M, 0.42)
    tick(conn, day4 + 2 * M)
    assert [c["outcome"] for c in checks(conn)] == ["disagreed"] * 3 + ["agreed"]
    assert checks(conn)[-1]["work_order_id"] == wo["id"]
    notes = [h["note"] for h in history(conn, wo["id"]) if h["action"] == "calibration_check"]
    assert len(notes) == 2 and "still disagrees" in notes[0] and "agrees again" in notes[1]
    assert len(tickets(conn)) == 1
    # the API: newest first, filters, scope
    sup = make_token("supervisor", site="t1")
    page = client.get("/api/v1/calibration-checks?site=t1&device=d1", headers=sup).json()
    assert page["total"] == 4 and page["items"][0]["outcome"] == "agreed"
    assert page["items"][0]["checkpoint_name"] == "Pump 1 check"
    assert page["items"][-1]["sensor_time"] == "2026-11-23T13:57:00Z"
    r = client.get("/api/v1/calibration-checks", params={
        "site": "t1", "from": (day2 - M).isoformat(), "to": day3.isoformat()}, headers=sup)
    assert r.status_code == 200 and [i["streak"] for i in r.json()["items"]] == [2]
    assert client.get("/api/v1/calibration-checks?checkpoint=e1&metric=outlet_pressure",
                      headers=sup).json()["total"] == 4
    assert client.get("/api/v1/calibration-checks?metric=flow", headers=sup).json()["total"] == 0
    dis = client.get("/api/v1/calibration-checks?outcome=disagreed&limit=2", headers=sup).json()
    assert (dis["total"], len(dis["items"])) == (3, 2)
    assert client.get("/api/v1/calibration-checks?site=t1",
                      headers=g1).json()["total"] == 4          # a guard: their own checks
    g2 = make_token("guard", site="t1", guard="g2")
    assert client.get("/api/v1/calibration-checks?site=t1", headers=g2).json()["total"] == 0
    conn.execute("INSERT INTO sites (id, name) VALUES ('t9', 'Another site')")
    conn.commit()
    other = make_token("viewer", site="t9")
    assert client.get("/api/v1/calibration-checks?site=t1", headers=other).status_code == 403
    assert client.get("/api/v1/calibration-checks", headers=other).json()["total"] == 0
    assert client.get("/api/v1/calibration-checks?from=1700000000",
                      headers=sup).status_code == 422
    assert client.get("/api/v1/calibration-checks?device=bad%20id",
                      headers=sup).status_code == 422
    assert client.get("/api/v1/calibration-checks").status_code == 401


def test_match_records_a_check_and_opens_nothing(
        client: TestClient, conn: psycopg.Connection[Any], api_clock: FakeClock,
        make_token: Headers) -> None:
    load(conn, tolerance="10%", repeat=1)
    g1 = make_token("guard", site="t1", guard="g1")
    api_clock.set(T0 + 60 * M)
    for k in range(3):
        sensor(conn, T0 + 10 * k * M + timedelta(seconds=30), 0.40)
        gauge(client, g1, T0 + 10 * k * M, "0.43")   # a string answer is read as a number
    gauge(client, g1, T0 + 21 * M, 0.9)                # a repeat scan (same tag, guard, 5 min)
    tick(conn, T0 + 25 * M)
    got = checks(conn)
    assert [(c["outcome"], c["allowed"], c["streak"], c["work_order_id"]) for c in got] == [
        ("agreed", pytest.approx(0.04), 0, None)] * 3
    assert tickets(conn) == []
    # the repeat is no second reading: its finding (0.9 is out of range) is filed, no check
    assert conn.execute("SELECT count(*) AS n FROM scan_checks WHERE disposition = 'repeat'"
                        ).fetchone() == {"n": 1}
    assert conn.execute("SELECT count(*) AS n FROM inspection_findings").fetchone() == {"n": 1}
    # processing the same scans again records nothing twice
    conn.execute("DELETE FROM scan_checks")
    conn.commit()
    from rules.patrol import engine
    engine.process_scans(conn, [c["scan_id"] for c in got], T0 + 26 * M)
    assert len(checks(conn)) == 3


def test_no_sensor_value_neither_agrees_nor_breaks_a_run(
        client: TestClient, conn: psycopg.Connection[Any], api_clock: FakeClock,
        make_token: Headers) -> None:
    load(conn)
    g1 = make_token("guard", site="t1", guard="g1")
    api_clock.set(T0 + 3 * 60 * M)
    sensor(conn, T0 - 11 * M, 0.40)                  # outside the 10-minute window
    sensor(conn, T0 + 59 * M, 0.40)
    sensor(conn, T0 + 121 * M, 0.40)
    gauge(client, g1, T0 + 60 * M, 0.60)             # disagrees
    gauge(client, g1, T0, 0.60)                      # no sensor value within 10 min
    gauge(client, g1, T0 + 30 * M, "n/a")            # not a number: no check at all
    gauge(client, g1, T0 + 120 * M, 0.60)            # disagrees: the second in a row
    tick(conn, T0 + 150 * M)
    got = checks(conn)
    assert [(c["outcome"], c["agreed"], c["sensor_value"], c["streak"]) for c in got] == [
        ("no_sensor_value", None, None, 0), ("disagreed", False, 0.40, 1),
        ("disagreed", False, 0.40, 2)]
    [wo] = tickets(conn)
    assert got[-1]["work_order_id"] == wo["id"]


def test_a_ticket_per_device_and_metric_and_a_retry_when_opening_failed(
        conn: psycopg.Connection[Any]) -> None:
    doc = site_doc()
    [cp] = [c for c in doc["checkpoints"] if c["id"] == "e1"]
    cp["checklist"].append({"item": "bearing temperature", "reading": "temp", "max": 70,
                            "unit": "degC"})
    doc["calibration"] = [{**LINK, "repeat": 1},
                          {"checkpoint": "e1", "reading": "temp", "metric": "bearing_temp",
                           "tolerance": 2, "repeat": 1, "severity": "major"}]
    load_site(conn, doc, now=T0 - 60 * M)
    conn.commit()
    sensor(conn, T0, 0.40)
    sensor(conn, T0, 50.0, metric="bearing_temp")
    from tests.patrol.helpers import scan
    scan(conn, "QR-E1", T0, readings={"pressure": 0.6, "temp": 60})
    tick(conn, T0 + M)
    got = tickets(conn)
    assert sorted((t["rule_id"], t["severity"]) for t in got) == [
        ("calibration:bearing_temp", "major"), ("calibration:outlet_pressure", "minor")]
    assert "60 degC" in next(t["title"] for t in got if t["rule_id"].endswith("temp"))
    # a check whose ticket could not be opened is retried by the patrol clock
    conn.execute("UPDATE calibration_checks SET work_order_id = NULL")
    conn.execute("DELETE FROM work_order_refs")
    conn.execute("DELETE FROM work_orders")
    conn.commit()
    tick(conn, T0 + 2 * M)
    assert len([t for t in tickets(conn) if t["state"] == "open"]) == 2
    assert all(c["work_order_id"] is not None for c in checks(conn))


def test_the_section_is_validated_against_the_site_and_follows_the_file(
        conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(SiteConfigError, match=r"calibration\[0\]: checkpoint 'e1' has no"
                                              r" checklist item with reading 'flow'"):
        load(conn, reading="flow")
    conn.rollback()
    with pytest.raises(SiteConfigError, match=r"device 'nope' does not exist"):
        load(conn, device="nope")
    conn.rollback()
    doc = site_doc()
    doc["calibration"] = [LINK, {**LINK, "reading": "no_leaks", "metric": "leak"}]
    load_site(conn, doc, now=T0)
    assert conn.execute("SELECT count(*) AS n FROM calibration_links").fetchone() == {"n": 2}
    load(conn)       # a link the file no longer has goes
    load(conn)
    rows = conn.execute("SELECT * FROM calibration_links").fetchall()
    assert [(r["checkpoint_id"], r["reading"], r["device_id"], r["repeat"]) for r in rows] == [
        ("e1", "pressure", "d1", 2)]
    # the example site loads with its links
    load_site(conn, example_document(), now=T0)
    conn.commit()
    links = conn.execute("SELECT checkpoint_id, tolerance, tolerance_pct FROM calibration_links"
                         " WHERE site_id = 'riverside' ORDER BY checkpoint_id").fetchall()
    assert [r["checkpoint_id"] for r in links] == [
        "ecp-fire-pump-1", "ecp-pump-1", "ecp-pump-2", "ecp-tank-fire"]
    assert (links[-1]["tolerance"], links[-1]["tolerance_pct"]) == (5.0, True)
