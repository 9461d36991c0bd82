"""Through the real broker, the real ingest and the rules worker: fault → alarm → work order."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg.rows import dict_row

from rules.config import load_rules
from rules.model import parse_rule
from stack.workers import run_rules as rules_main
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    Publisher,
    forget_session,
    ingest_settings,
    running_worker,
    wait_until,
)
from tests.rules.helpers import RULES, T0

pytestmark = pytest.mark.e2e


def _rows(database: str, query: str) -> list[dict[str, object]]:
    with psycopg.connect(database, row_factory=dict_row) as c:
        return [dict(r) for r in c.execute(query)]


def test_published_fault_becomes_one_alarm_and_one_work_order(database: str,
                                                              mqtt: Broker) -> None:
    site = f"e{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, row_factory=dict_row) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'E2E')", (site,))
        c.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump'),"
                  " ('power_meter', 'meter')")
        for dev, typ in (("pump-1", "water_pump"), ("pump-2", "water_pump"),
                         ("meter-main", "power_meter")):
            c.execute("INSERT INTO devices (site_id, id, type_id, name) VALUES (%s, %s, %s, %s)",
                      (site, dev, typ, dev))
        load_rules(c, site, [parse_rule(site, r) for r in RULES], now=T0)
    settings = ingest_settings(database, mqtt)
    stop = threading.Event()
    rules = threading.Thread(target=rules_main, args=(settings,), kwargs={"stop": stop},
                             daemon=True)
    rules.start()
    base = f"caretaker/v1/{site}/devices"
    try:
        with running_worker(settings):
            pub = Publisher(mqtt, v5=True)
            pub.publish(f"{base}/pump-1/telemetry", json.dumps({"vibration": 2.1}))
            pub.publish(f"{base}/pump-2/telemetry", json.dumps({"vibration": 2.3}))
            assert wait_until(lambda: len(_rows(database, "SELECT 1 FROM telemetry")) == 2)
            assert _rows(database, "SELECT * FROM alarms") == []
            started = time.monotonic()
            for v in (8.2, 8.4, 8.1):  # one fault, reported three times
                pub.publish(f"{base}/pump-1/telemetry", json.dumps({"vibration": v}))
            assert wait_until(lambda: len(_rows(database, "SELECT 1 FROM work_orders")) == 1)
            elapsed = time.monotonic() - started
            lwt = Properties(PacketTypes.PUBLISH)
            lwt.UserProperty = ("source", "lwt")
            pub.publish(f"{base}/pump-2/status", b"offline", properties=lwt)
            assert wait_until(lambda: len(_rows(database, "SELECT 1 FROM alarms"
                                                          " WHERE rule_id = 'offline'")) == 1)
            assert wait_until(lambda: _rows(database, "SELECT count(*) AS n FROM ingest_events"
                                                      " WHERE kind <> 'scans'")[0]["n"] == 0)
            pub.close()
    finally:
        stop.set()
        rules.join(20)
        forget_session(settings)
    assert not rules.is_alive()
    assert elapsed < 5
    alarms = _rows(database, "SELECT * FROM alarms ORDER BY id")
    assert [(a["device_id"], a["rule_id"]) for a in alarms] == [("pump-1", "vib-major"),
                                                                ("pump-2", "offline")]
    assert alarms[0]["count"] == 1 and alarms[0]["first_value"] == 8.2
    [wo] = _rows(database, "SELECT * FROM work_orders ORDER BY id LIMIT 1")
    assert wo["device_id"] == "pump-1" and wo["alarm_id"] == alarms[0]["id"]
    assert len(_rows(database, "SELECT * FROM work_orders")) == 2  # the offline one too


def test_simulated_fault_scenario_yields_the_expected_tickets(
        database: str, mqtt: Broker, client: TestClient,
        make_token: Callable[..., dict[str, str]]) -> None:
    """`caretaker simulate --scenario faults` on the example site, sped up 60 times."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    from caretaker.site_config import example_document
    from stack.app import load_site

    with psycopg.connect(database, row_factory=dict_row) as c:
        load_site(c, example_document(), now=datetime.now(UTC))
    settings = ingest_settings(database, mqtt)
    env = {**os.environ, "CARETAKER_DATABASE_URL": database,
           "CARETAKER_MQTT_URL": mqtt.url(), "CARETAKER_STATE_DIR": str(mqtt.state_dir)}
    stop = threading.Event()
    rules = threading.Thread(target=rules_main, args=(settings,), kwargs={"stop": stop},
                             daemon=True)
    rules.start()
    try:
        with running_worker(settings):
            sim = subprocess.run(
                [sys.executable, "-m", "stack.cli", "simulate", "--scenario", "faults",
                 "--speed", "60", "--duration", "32m", "--no-guards", "--seed", "7"],
                env=env, capture_output=True, timeout=240)
            assert sim.returncode == 0, sim.stderr.decode()[-2000:]
            assert wait_until(lambda: _rows(database, "SELECT count(*) AS n FROM ingest_events"
                                                      " WHERE kind <> 'scans'")[0]["n"] == 0)
            # the clock has passed the hold times: every fault ticket is open (the vibration
            # one raised to critical), and meter-pumps' offline ticket (its Last Will); the
            # simulator's end is a planned stop, no fault: every device offline, no ticket
            # (the status events were consumed above: the rules have judged the stop)
            assert wait_until(lambda: _rows(
                database, "SELECT count(*) FILTER (WHERE rule_id <> 'device-offline') >= 4"
                " AND bool_or(rule_id = 'pump-vibration' AND severity = 'critical')"
                " AND bool_or(device_id = 'meter-pumps' AND rule_id = 'device-offline')"
                " AND (SELECT count(*) FROM devices WHERE online_source = 'planned')"
                " = (SELECT count(*) FROM devices) AS done FROM work_orders")[0]["done"])
    finally:
        stop.set()
        rules.join(20)
        forget_session(settings)
    tickets = _rows(database, "SELECT * FROM work_orders")
    faults = sorted((w["device_id"], w["rule_id"]) for w in tickets
                    if w["rule_id"] != "device-offline")
    # one ticket per fault, not one per severity: pump-1's bearing drift is one ticket
    assert faults == [
        ("chiller-1", "chiller-supply-temp-high"),  # flapping around 9 degC: one ticket
        ("elev-a1", "elevator-door-fault"),
        ("pump-1", "pump-vibration"),  # warning → major → critical
        ("pump-2", "pump-bearing-temp"),
    ]
    # Only meter-pumps' Last Will during the run is an offline fault; when the simulator
    # stops, every device announces a planned stop, which opens no ticket.
    offline = {w["device_id"]: w for w in tickets if w["rule_id"] == "device-offline"}
    assert set(offline) == {"meter-pumps"} and offline["meter-pumps"]["repeat_count"] == 0
    page = client.get("/api/v1/work-orders", params={"site": "riverside", "limit": 100},
                      headers=make_token("viewer", site="riverside")).json()
    assert page["total"] == len(tickets) == len(faults) + 1
    [vibration] = [w for w in page["items"] if w["rule_id"] == "pump-vibration"]
    assert (vibration["severity"], vibration["priority"], vibration["state"]) == (
        "critical", 1, "open")
    alarms = _rows(database, "SELECT * FROM alarms WHERE rule_id <> 'device-offline'")
    assert sorted((a["device_id"], a["rule_id"]) for a in alarms) == faults  # one alarm each
    [vib_alarm] = [a for a in alarms if a["rule_id"] == "pump-vibration"]
    assert vib_alarm["peak_severity"] == "critical"
    assert vib_alarm["work_order_id"] == vibration["id"]
    history = [h for h in _rows(database, "SELECT alarm_id, action, note FROM alarm_history"
                                          " ORDER BY id") if h["alarm_id"] == vib_alarm["id"]]
    assert [(h["action"], h["note"].split(":")[0]) for h in history[:3]] == [
        ("raised", "pump-1"), ("severity_raised", "warning -> major"),
        ("severity_raised", "major -> critical")]
