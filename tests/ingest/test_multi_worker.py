"""Two ingest workers on one shared subscription and two rules workers on one outbox, a real
broker and database, a known stream: every reading stored once, every fault one alarm and one
work order, the outbox drained."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from rules.config import load_rules
from rules.model import parse_rule
from stack.workers import run_rules
from tests.fix_servers import Broker
from tests.ingest.helpers import forget_session, ingest_settings, publish, running_worker
from tests.rules.helpers import RULES
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

PUMPS = 20  # healthy pumps, READINGS each
READINGS = 150
FAULTY = 5  # pumps that report one fault, three times each


def _one(database: str, query: str) -> int:
    with psycopg.connect(database) as c:
        return int(c.execute(query).fetchone()[0])  # type: ignore[index]


def test_two_ingest_and_two_rules_workers_lose_and_double_nothing(database: str,
                                                                  mqtt: Broker) -> None:
    site = f"m{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, row_factory=dict_row) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'Multi')", (site,))
        c.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump'),"
                  " ('power_meter', 'meter')")
        for i in range(PUMPS + FAULTY):
            c.execute("INSERT INTO devices (site_id, id, type_id, name)"
                      " VALUES (%s, %s, 'water_pump', %s)", (site, f"p{i}", f"p{i}"))
        load_rules(c, site, [parse_rule(site, r) for r in RULES if r["id"] != "mains-lost"],
                   now=datetime.now(UTC))
    base = f"caretaker/v1/{site}/devices"
    start = int(time.time() * 1000) - 60_000
    seq = 0
    stream: list[tuple[str, bytes]] = []
    for k in range(READINGS):  # interleaved across pumps, each pump's readings 10 ms apart
        for i in range(PUMPS + FAULTY):
            if i >= PUMPS and k >= 3:
                continue
            vibration = 8.2 + k / 10 if i >= PUMPS else 2.0 + (k % 10) / 10
            stream.append((f"{base}/p{i}/telemetry", json.dumps(
                {"ts": start + k * 10, "values": {"vibration": vibration, "seq": seq}}).encode()))
            seq += 1
    settings = ingest_settings(database, mqtt, ingest_workers=2, ingest_batch_size=200)
    stop = threading.Event()
    rules = [threading.Thread(target=run_rules, args=(settings,), kwargs={"stop": stop},
                              daemon=True) for _ in range(2)]
    for t in rules:
        t.start()
    try:
        with running_worker(settings, 0), running_worker(settings, 1):
            publish(mqtt, stream)
            assert wait_until(lambda: _one(database, "SELECT count(*) FROM telemetry"
                                                     " WHERE metric = 'seq'") >= seq, 60)
            assert wait_until(lambda: _one(database, "SELECT count(*) FROM work_orders")
                              >= FAULTY and _one(database, "SELECT count(*) FROM ingest_events"
                                                           " WHERE kind <> 'scans'") == 0, 60)
    finally:
        stop.set()
        for t in rules:
            t.join(20)
        forget_session(settings, workers=2)
    assert not any(t.is_alive() for t in rules)
    with psycopg.connect(database, row_factory=dict_row) as c:
        seqs = c.execute("SELECT count(*) AS n, count(DISTINCT value) AS d, min(value) AS lo,"
                         " max(value) AS hi FROM telemetry WHERE metric = 'seq'").fetchone()
        assert seqs == {"n": seq, "d": seq, "lo": 0, "hi": seq - 1}
        assert c.execute("SELECT count(*) AS n FROM series").fetchone()["n"] == 2 * (
            PUMPS + FAULTY)
        latest = c.execute(
            "SELECT count(*) AS n FROM latest_readings l JOIN series s ON s.id = l.series_id"
            " WHERE l.time = (SELECT max(time) FROM telemetry_points p"
            "                 WHERE p.series_id = l.series_id)").fetchone()
        assert latest["n"] == 2 * (PUMPS + FAULTY)
        alarms = c.execute("SELECT device_id, rule_id FROM alarms ORDER BY device_id").fetchall()
        assert sorted((a["device_id"], a["rule_id"]) for a in alarms) == sorted(
            (f"p{i}", "vib-major") for i in range(PUMPS, PUMPS + FAULTY))
        tickets = c.execute("SELECT device_id FROM work_orders").fetchall()
        assert sorted(t["device_id"] for t in tickets) == sorted(
            f"p{i}" for i in range(PUMPS, PUMPS + FAULTY))
        shares = c.execute("SELECT worker, messages FROM ingest_stats").fetchall()
    assert len(shares) == 2 and all(s["messages"] > 0 for s in shares)
