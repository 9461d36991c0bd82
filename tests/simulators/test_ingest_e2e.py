"""End to end: simulator → real broker → `caretaker ingest` (a subprocess) → telemetry rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from simulators.publisher import Publisher
from simulators.run import Options, build_plan, simulate
from simulators.stream import Publish, events
from tests.fix_servers import Broker
from tests.simulators.test_publish import site_copy

pytestmark = pytest.mark.e2e
START = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


@pytest.fixture
def ingest(settings_env: dict[str, str], mqtt: Broker,
           tmp_path: Path) -> Iterator[str]:
    """`caretaker ingest` running on this test's database; yields the database URL."""
    env = {**os.environ, **settings_env}
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stack.cli", "ingest"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    database = settings_env["CARETAKER_DATABASE_URL"]
    try:
        _wait_until_ingesting(database, mqtt, proc, log)
        yield database
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_ingesting(database: str, mqtt: Broker,
                          proc: subprocess.Popen[bytes], log: Path) -> None:
    """Publish a probe reading until the ingest has stored one (it has subscribed by then)."""
    site = f"probe-{uuid.uuid4().hex[:8]}"
    probe = f"caretaker/v1/{site}/devices/probe/telemetry"
    publisher = Publisher(mqtt.take("simulator"))
    deadline = time.monotonic() + 60
    try:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'Probe')", (site,))
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text(errors="replace")
                publisher.publish(probe, b'{"probe": 1}')
                if conn.execute("SELECT 1 FROM telemetry WHERE device_id = 'probe'").fetchone():
                    return
                time.sleep(0.5)
    finally:
        publisher.close()
    raise AssertionError("the ingest stored nothing within 60 s:\n" + log.read_text())


def _register(database: str, config: Path, site: str) -> None:
    """Configure the site and its guards (topics of unknown sites and guards are refused);
    the devices stay unknown to the database, so the ingest auto-registers them."""
    guards = yaml.safe_load(config.read_text())["guards"]
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'Simulated')", (site,))
        for guard in guards:
            conn.execute("INSERT INTO guards (site_id, id, name) VALUES (%s, %s, %s)",
                         (site, guard["id"], guard["name"]))


def _poll(conn: psycopg.Connection, sql: str, params: tuple, want: int,
          timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(sql, params).fetchone()
        got = int(row[0]) if row else 0
        if got >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_simulated_history_arrives_as_telemetry_rows(ingest: str, mqtt: Broker,
                                                     tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    _register(ingest, config, site)
    # 13:00-15:00 in Shanghai: the day patrol and the gate post's hourly rounds walk
    options = dict(config=config, backfill=7200, interval=60, start=START, seed=11,
                   scenario="bad-payloads")
    plan, _ = build_plan(Options(**options), now=datetime.now(UTC))
    planned = [e for e in events(plan) if isinstance(e, Publish)]
    expected: dict[tuple[str, str, int], float | str] = {}
    for e in planned:
        if e.kind != "telemetry":
            continue
        device = e.topic.split("/")[4]
        body = json.loads(e.payload)
        for item in body if isinstance(body, list) else [body]:
            for metric, value in item["values"].items():
                expected[(device, metric, item["ts"])] = (
                    value if isinstance(value, str) else float(value))
    bad = sum(1 for e in planned if e.kind == "bad")
    assert len(expected) == 65 * 120 and bad == 5 * 12  # 65 metrics, 120 readings each
    scans: dict[str, tuple[str, str]] = {}
    for e in planned:
        if e.kind == "scan":
            body = json.loads(e.payload)
            for item in body if isinstance(body, list) else [body]:
                scans[item["scan_id"]] = (e.topic.split("/")[4], item["tag"])
    assert len(scans) >= 6

    simulate(Options(progress=False, **options), target=mqtt.take("simulator"),
             now=datetime.now(UTC))

    with psycopg.connect(ingest, autocommit=True) as conn:
        rows = _poll(conn, "SELECT count(*) FROM telemetry WHERE site_id = %s", (site,),
                     len(expected))
        # identical bad messages are one dead letter, counted
        dead = _poll(conn, "SELECT coalesce(sum(count), 0) FROM dead_letters", (), bad,
                     timeout=10)
        stored = {
            (device, metric, round(ts.timestamp() * 1000)): text if text is not None else value
            for device, metric, ts, value, text in conn.execute(
                "SELECT device_id, metric, time, value, text_value FROM telemetry"
                " WHERE site_id = %s", (site,))
        }
        _poll(conn, "SELECT count(*) FROM scans WHERE site_id = %s", (site,), len(scans))
        stored_scans = {
            str(scan_id): (guard, tag) for scan_id, guard, tag in conn.execute(
                "SELECT scan_id, guard_id, tag FROM scans WHERE site_id = %s", (site,))
        }
        devices = conn.execute(
            "SELECT id, status, last_seen FROM devices WHERE site_id = %s ORDER BY id",
            (site,)).fetchall()
    assert rows == len(expected)
    assert stored == expected  # every value, exactly once, at its own timestamp
    assert dead == bad  # every bad payload dead-lettered, none of the good ones
    assert stored_scans == scans  # guards' scans, offline batches included, each once
    assert len(devices) == 20  # unknown to the database: auto-registered, not dropped
    assert {status for _, status, _ in devices} == {"unassigned"}
    assert all(last_seen is not None for _, _, last_seen in devices)


def test_a_device_silent_with_last_will_goes_offline_in_the_database(
        ingest: str, mqtt: Broker, tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    _register(ingest, config, site)
    scenario = tmp_path / "lwt.yaml"
    scenario.write_text("faults:\n  - {kind: silent, devices: [meter-pumps], lwt: true,"
                        " start: 20s, duration: 40s}\n")
    simulate(Options(config=config, scenario=str(scenario), speed=20, duration=100, interval=5,
                     guards=False, progress=False), target=mqtt.take("simulator"),
             now=datetime.now(UTC), device_logins=mqtt.devices)  # a real Last Will
    with psycopg.connect(ingest, autocommit=True) as conn:
        _poll(conn, "SELECT count(*) FROM device_status WHERE site_id = %s", (site,), 2 * 20 + 2)
        history = conn.execute(
            "SELECT status, source FROM device_status WHERE site_id = %s"
            " AND device_id = 'meter-pumps' ORDER BY time", (site,)).fetchall()
        others = conn.execute(
            "SELECT device_id, array_agg(status ORDER BY time) FROM device_status"
            " WHERE site_id = %s AND device_id <> 'meter-pumps' GROUP BY device_id",
            (site,)).fetchall()
        online = conn.execute("SELECT online FROM devices WHERE site_id = %s"
                              " AND id = 'meter-pumps'", (site,)).fetchone()
    # A reading may reach the broker before its device's own `online` (two connections, no
    # order between them): the ingest then marks it online from the telemetry, as it should.
    announced = [row for row in history if row[1] != "telemetry"]
    assert all(status == "online" for status, source in history if source == "telemetry")
    assert announced == [("online", "status"), ("offline", "lwt"), ("online", "status"),
                         ("offline", "planned")]
    assert len(others) == 19 and all(states == ["online", "offline"] for _, states in others)
    assert online == (False,)  # the run ended: every simulated device said goodbye
