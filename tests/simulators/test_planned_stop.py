"""The simulator's orderly end is a planned stop: devices offline, no alarm, no ticket; a Last
Will still raises both."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg.rows import dict_row

from ingest.payloads import Status, parse_status
from rules.config import load_rules
from rules.evaluate import evaluate_offline
from rules.model import parse_rule
from simulators.run import PLANNED_STOP
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

NOW_MS = 1_790_000_000_000


def test_the_planned_stop_payload_is_told_apart_from_a_will() -> None:
    assert parse_status(PLANNED_STOP, now_ms=NOW_MS) == Status("offline", "planned", None)
    assert parse_status(b"offline", now_ms=NOW_MS).source == "status"
    assert parse_status(b"offline", now_ms=NOW_MS, lwt=True).source == "lwt"
    # only an offline can be planned
    online = b'{"status": "online", "reason": "planned"}'
    assert parse_status(online, now_ms=NOW_MS) == Status("online", "status", None)


def test_a_planned_stop_and_the_silence_after_it_raise_no_offline_alarm() -> None:
    rule = parse_rule("s", next(r for r in RULES if r["id"] == "offline"))
    long_ago = T0 - timedelta(hours=3)
    state, decided = evaluate_offline(rule, {}, last_seen=long_ago, online=False, now=T0,
                                      device="d", planned=True)
    assert (state, decided) == ({}, [])
    _, decided = evaluate_offline(rule, {}, last_seen=long_ago, online=False, now=T0,
                                  device="d")
    assert [d.action for d in decided] == ["raise"]  # the same without the plan: a fault
    _, decided = evaluate_offline(rule, {"firing": True}, last_seen=long_ago, online=False,
                                  now=T0, device="d", planned=True)
    assert [d.action for d in decided] == ["clear"]


@pytest.mark.e2e
def test_through_broker_ingest_and_rules_only_the_will_opens_a_ticket(
        database: str, mqtt: Broker) -> None:
    site = f"p{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, row_factory=dict_row) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'Planned')", (site,))
        c.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump')")
        for dev in ("pump-1", "pump-2"):
            c.execute("INSERT INTO devices (site_id, id, type_id, name) VALUES (%s, %s, %s, %s)",
                      (site, dev, "water_pump", dev))
        load_rules(c, site, [parse_rule(site, r) for r in RULES if r["id"] == "offline"],
                   now=datetime.now(UTC))
    settings = ingest_settings(database, mqtt)
    stop = threading.Event()
    rules = threading.Thread(target=rules_main, args=(settings,), kwargs={"stop": stop},
                             daemon=True)
    rules.start()
    base = f"caretaker/v1/{site}/devices"

    def rows(query: str) -> list[dict[str, object]]:
        with psycopg.connect(database, row_factory=dict_row) as c:
            return [dict(r) for r in c.execute(query, (site,))]

    try:
        with running_worker(settings):
            pub = Publisher(mqtt, v5=True)
            for dev in ("pump-1", "pump-2"):
                pub.publish(f"{base}/{dev}/status", b"online")
                pub.publish(f"{base}/{dev}/telemetry", json.dumps({"vibration": 2.0}))
            assert wait_until(lambda: len(rows("SELECT 1 FROM devices WHERE site_id = %s"
                                               " AND online")) == 2)
            pub.publish(f"{base}/pump-1/status", PLANNED_STOP)  # what the simulator says
            lwt = Properties(PacketTypes.PUBLISH)
            lwt.UserProperty = ("source", "lwt")
            pub.publish(f"{base}/pump-2/status", b"offline", properties=lwt)
            assert wait_until(lambda: len(rows("SELECT 1 FROM work_orders"
                                               " WHERE site_id = %s")) == 1)
            assert wait_until(lambda: rows("SELECT count(*) AS n FROM ingest_events"
                                           " WHERE kind <> 'scans' AND payload::text LIKE"
                                           " '%%' || %s || '%%'")[0]["n"] == 0)
            pub.close()
    finally:
        stop.set()
        rules.join(20)
        forget_session(settings)
    assert not rules.is_alive()
    alarms = rows("SELECT device_id, rule_id FROM alarms WHERE site_id = %s")
    assert alarms == [{"device_id": "pump-2", "rule_id": "offline"}]
    devices = rows("SELECT id, online, online_source FROM devices WHERE site_id = %s"
                   " ORDER BY id")
    assert [(d["id"], d["online"], d["online_source"]) for d in devices] == [
        ("pump-1", False, "planned"), ("pump-2", False, "lwt")]
    history = rows("SELECT source FROM device_status WHERE site_id = %s"
                   " AND device_id = 'pump-1' AND status = 'offline'")
    assert history == [{"source": "planned"}]
