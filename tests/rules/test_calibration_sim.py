"""The simulator's gauges: readings that track the simulated sensors, a `gauge_offset` fault,
and the whole path simulator → broker → ingest → patrol engine → calibration ticket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from caretaker.clock import FakeClock
from caretaker.db import make_pool
from caretaker.scheduler import run_job_once
from caretaker.settings import Settings
from caretaker.site_config import example_document
from rules.patrol.engine import patrol_jobs
from simulators import scenarios as sc
from simulators.devices import MODELS
from simulators.fleet import fleet_from_config, load_config
from simulators.run import Options, build_plan, simulate
from simulators.stream import Plan, Publish, events
from stack.app import load_site
from tests.fix_servers import Broker
from tests.ingest.helpers import forget_session, ingest_settings, running_worker
from tests.waiting import wait_until

CONFIG = load_config()
FLEET = tuple(fleet_from_config(CONFIG, known_types=set(MODELS)))
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)   # 08:00 in Shanghai: the 08:30 round follows


def test_gauge_offset_fault_is_parsed_and_applied() -> None:
    fault = sc.parse_fault({"kind": "gauge_offset", "devices": "pump-1",
                            "metric": "outlet_pressure", "offset": -0.2, "start": "1h",
                            "duration": "1h"})
    assert (fault.metric, fault.offset, fault.start, fault.end) == (
        "outlet_pressure", -0.2, 3600, 7200)
    assert sc.gauge_offset((fault,), 3600, "outlet_pressure") == -0.2
    assert sc.gauge_offset((fault,), 7200, "outlet_pressure") == 0.0
    assert sc.gauge_offset((fault,), 5000, "flow") == 0.0
    assert sc.overrides((fault,), 5000) == {}            # the sensor is not touched
    for bad, why in (({"offset": 0.1}, "missing metric"),
                     ({"metric": "flow"}, "missing offset"),
                     ({"metric": "flow", "offset": "high"}, "offset must be a number")):
        with pytest.raises(ValueError, match=why):
            sc.parse_fault({"kind": "gauge_offset", "devices": ["pump-1"], **bad})
    assert {f.kind for f in sc.load_scenario("calibration").faults} == {"gauge_offset"}


def _plan(days: float) -> Plan:
    pumps = tuple(d for d in FLEET if d.id in ("pump-1", "pump-2"))
    return Plan(devices=pumps, start=START.timestamp(),
                end=(START + timedelta(days=days)).timestamp(), interval=60, seed=3,
                live=False, sites=(CONFIG,), scenario=sc.load_scenario("calibration"))


def test_gauges_track_their_sensors_and_the_faulty_one_reads_high() -> None:
    sensor: dict[str, list[tuple[float, float]]] = {"pump-1": [], "pump-2": []}
    gauges: dict[str, list[tuple[float, float]]] = {"QR-RS-PUMP-1": [], "QR-RS-PUMP-2": []}
    for e in events(_plan(3)):
        if not isinstance(e, Publish):
            continue
        body = json.loads(e.payload)
        for item in body if isinstance(body, list) else [body]:
            if e.kind == "telemetry" and "outlet_pressure" in item["values"]:
                sensor[e.topic.split("/")[4]].append((item["ts"] / 1000,
                                                      item["values"]["outlet_pressure"]))
            elif e.kind == "scan" and item["tag"] in gauges:
                gauges[item["tag"]].append((item["ts"] / 1000,
                                            item["readings"]["outlet_pressure"]))

    def nearest(device: str, t: float) -> float:
        return min(sensor[device], key=lambda r: abs(r[0] - t))[1]

    assert len(gauges["QR-RS-PUMP-1"]) == len(gauges["QR-RS-PUMP-2"]) == 3  # daily 08:30
    for t, read in gauges["QR-RS-PUMP-2"]:
        assert abs(read - nearest("pump-2", t)) < 0.03          # agrees (tolerance 0.05)
    for t, read in gauges["QR-RS-PUMP-1"]:
        assert abs(read - nearest("pump-1", t) - 0.10) < 0.03   # 0.10 MPa high
        assert 0.3 <= read <= 0.6                               # yet inside the checklist range


@pytest.mark.e2e
def test_simulated_gauge_drift_opens_a_calibration_ticket_through_the_broker(
        database: str, mqtt: Broker, conn: psycopg.Connection[Any]) -> None:
    """`caretaker simulate --backfill 2d --scenario calibration` → broker → ingest → the
    patrol engine: pump 1's gauge disagrees twice (one ticket), pump 2's agrees."""
    load_site(conn, example_document(), now=START)
    conn.commit()
    options = Options(backfill=2 * 86400, interval=120, start=START, seed=3,
                      scenario="calibration", progress=False)
    plan, _ = build_plan(options, now=datetime.now(UTC))
    scans = sum(len(json.loads(e.payload)) if e.payload.startswith(b"[") else 1
                for e in events(plan) if isinstance(e, Publish) and e.kind == "scan")
    settings = Settings(database_url=database)
    ingest = ingest_settings(database, mqtt)

    def stored() -> bool:
        conn.commit()
        row = conn.execute("SELECT count(*) AS n FROM scans").fetchone()
        pumps = conn.execute("SELECT count(*) AS n FROM telemetry WHERE device_id = 'pump-1'"
                             " AND metric = 'outlet_pressure'").fetchone()
        return bool(row and pumps and row["n"] == scans and pumps["n"] == 2 * 720)

    pool = make_pool(settings, max_size=2)
    try:
        with running_worker(ingest):
            simulate(options, target=mqtt.take("simulator"), now=datetime.now(UTC))
            wait_until(stored, timeout=120, what="the simulated history stored")
        clock = FakeClock(START + timedelta(days=2))

        def pending() -> bool:
            conn.commit()
            return conn.execute("SELECT 1 FROM ingest_events WHERE kind = 'scans'"
                                ).fetchone() is not None

        for _ in range(50):  # the patrol worker's jobs, a batch of scans at a time
            for job in patrol_jobs(settings):
                assert run_job_once(pool, job, clock)
            if not pending():
                break
        assert not pending()
    finally:
        pool.close()
        forget_session(ingest)
    conn.commit()
    got = conn.execute("SELECT checkpoint_id, outcome, manual_value - sensor_value AS diff"
                       " FROM calibration_checks ORDER BY checkpoint_id, scan_time").fetchall()
    by = {cp: [r["outcome"] for r in got if r["checkpoint_id"] == cp]
          for cp in ("ecp-pump-1", "ecp-pump-2")}
    assert by == {"ecp-pump-1": ["disagreed", "disagreed"], "ecp-pump-2": ["agreed", "agreed"]}
    assert all(0.07 < r["diff"] < 0.13 for r in got if r["checkpoint_id"] == "ecp-pump-1")
    [wo] = conn.execute("SELECT * FROM work_orders WHERE source = 'calibration'").fetchall()
    assert (wo["device_id"], wo["checkpoint_id"], wo["state"]) == ("pump-1", "ecp-pump-1", "open")
    assert "outlet pressure 出口压力" in wo["title"] and " MPa vs sensor " in wo["title"]
