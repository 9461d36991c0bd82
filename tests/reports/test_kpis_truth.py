"""End to end: `caretaker simulate --backfill 1d --truth FILE` through the real broker, the real
ingest and the real rules worker (rules and patrol); `compute` equals what the truth implies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from caretaker.site_config import example_document
from reports import kpis
from simulators import truth
from stack.app import load_site
from stack.workers import run_rules
from tests.fix_servers import Broker
from tests.ingest.helpers import forget_session, ingest_settings, running_worker
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
SCENARIO = {"name": "kpi-truth", "faults": [
    {"kind": "step", "devices": ["pump-2"], "set": {"bearing_temp": 95}, "start": "2h",
     "duration": "30m"},
    {"kind": "step", "devices": ["pump-2"], "set": {"bearing_temp": 95}, "start": "10h",
     "duration": "30m"},                                       # the same fault again: a repeat
    {"kind": "step", "devices": ["elev-a1"], "set": {"door_fault": True, "fault_code": "DOOR"},
     "start": "6h", "duration": "20m"},
    {"kind": "step", "devices": ["chiller-1"], "set": {"supply_temp": 9.6}, "start": "14h",
     "duration": "20m"},
]}
RATES = "late=0.1,missed=0.08,out_of_order=0.2,repeated=0.05,offline_batch=0.1,missed_run=0.05"


def _site(day: date) -> dict[str, Any]:
    """The example site, its schedules starting on `day`, without the offline rule (the
    backfilled devices fall silent when the history ends: every one would be offline)."""
    doc: dict[str, Any] = example_document()
    for s in doc["schedules"]:
        s["effective_from"] = day.isoformat()
    doc["rules"] = [r for r in doc["rules"] if r.get("kind") != "offline"]
    for r in doc["rules"]:
        if isinstance(r.get("inhibits"), dict):
            r["inhibits"]["rules"] = [x for x in r["inhibits"]["rules"] if x != "device-offline"]
    return doc


def _one(database: str, query: str, params: Any = ()) -> Any:
    with psycopg.connect(database, row_factory=dict_row) as c:
        row = c.execute(query, params).fetchone()
        assert row is not None
        return next(iter(row.values()))


def _scans_made(doc: dict[str, Any]) -> int:
    visits = [v for r in doc["patrol"]["runs"] for v in r["visits"]]
    return sum(v["scan_time"] is not None for v in visits) + sum(v["repeated"] for v in visits)


def test_kpis_of_a_backfilled_day_equal_the_ground_truth(database: str, mqtt: Broker,
                                                         tmp_path: Path) -> None:
    today = datetime.now(TZ).date()
    day = today - timedelta(days=2)
    start = datetime.combine(day, time(0), TZ).astimezone(UTC)
    site = _site(day)
    config, scenario, truth_file = (tmp_path / "site.yaml", tmp_path / "faults.yaml",
                                    tmp_path / "truth.json")
    config.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    scenario.write_text(yaml.safe_dump(SCENARIO), encoding="utf-8")
    with psycopg.connect(database, row_factory=dict_row) as c:
        load_site(c, site, now=datetime.now(UTC))
    settings = ingest_settings(database, mqtt)
    env = {**os.environ, "CARETAKER_DATABASE_URL": database, "CARETAKER_MQTT_URL": mqtt.url(),
           "CARETAKER_STATE_DIR": str(mqtt.state_dir), "PYTHONPATH": str(ROOT)}
    stop = threading.Event()
    rules = threading.Thread(target=run_rules, args=(settings,), kwargs={"stop": stop},
                             daemon=True)
    rules.start()
    try:
        with running_worker(settings):
            sim = subprocess.run(
                [sys.executable, "-m", "stack.cli", "simulate", "--config", str(config),
                 "--backfill", "1d", "--start", start.strftime("%Y-%m-%dT%H:%M:%S"),
                 "--interval", "2m", "--scenario", str(scenario), "--seed", "5",
                 "--guard-rates", RATES, "--truth", str(truth_file)],
                env=env, capture_output=True, timeout=300, cwd=tmp_path)
            assert sim.returncode == 0, sim.stderr.decode()[-3000:]
            assert f"ground truth: {truth_file}" in sim.stdout.decode()
            doc = truth.read(truth_file)
            expected = truth.expected_faults(doc, "riverside")
            scans = _scans_made(doc)
            wait_until(lambda: _one(database, "SELECT count(*) FROM ingest_events") == 0
                       and _one(database, "SELECT count(*) FROM scan_checks") == scans,
                       180, "the ingest and the patrol engine to take every message")
            wait_until(lambda: _one(database, "SELECT count(*) FROM work_order_refs")
                       == expected["faults"], 60, "a ticket reference per fault")
            wait_until(lambda: _one(
                database, "SELECT count(*) FROM patrol_runs WHERE planned_start >= %s AND"
                " planned_start < %s AND NOT final", (start, start + timedelta(days=1))) == 0,
                60, "the day's runs to be final")
    finally:
        stop.set()
        rules.join(30)
        forget_session(settings)
    assert not rules.is_alive()
    assert (doc["start"], doc["seed"], doc["scenario"]) == (start.isoformat(), 5, "kpi-truth")
    assert expected["tickets"] == ["chiller-1/chiller-supply-temp-high",
                                   "elev-a1/elevator-door-fault", "pump-2/pump-bearing-temp"]
    assert (expected["faults"], expected["repeats"]) == (4, 1)

    with psycopg.connect(database, row_factory=dict_row) as conn:
        now = datetime.now(UTC)
        # the tickets open when the worker reads the history (now): count them up to today
        faults = kpis.compute(conn, "riverside", day, today + timedelta(days=1), now=now)
        patrol = kpis.compute(conn, "riverside", day, day + timedelta(days=1), now=now)
        tickets = sorted(f"{r['device_id']}/{r['rule_id']}" for r in conn.execute(
            "SELECT device_id, rule_id FROM work_orders"))
    assert tickets == expected["tickets"]
    rf = faults["repeat_faults"]
    assert (rf.numerator, rf.denominator) == (expected["repeats"], expected["faults"])
    assert rf.breakdown["by_device"] == {d: c for d, c in expected["by_device"].items()
                                         if c["repeats"]}
    assert faults["mtbf_seconds"].denominator == expected["faults"]

    want = truth.expected_patrol(doc, "riverside", start, start + timedelta(days=1))
    got = patrol["patrol_completion"]
    for group in ("by_route", "by_guard"):
        assert {k: (v["numerator"], v["denominator"], v["late"], v["missed"], v["out_of_order"])
                for k, v in got.breakdown[group].items()} == {
            k: (v["done"], v["expected"], v["late"], v["missed"], v["out_of_order"])
            for k, v in want[group].items()}, group
    done = sum(v["done"] for v in want["by_route"].values())
    total = sum(v["expected"] for v in want["by_route"].values())
    assert got.value == pytest.approx(done / total) and total > 0
    assert got.breakdown["missed"] > 0 and got.breakdown["late"] > 0
    insp = patrol["inspection_completion"]
    assert {k: (v["numerator"], v["denominator"], v["late"])
            for k, v in insp.breakdown["by_route"].items()} == {
        k: (v["done"], v["due"], v["late"]) for k, v in want["inspection_by_route"].items()}
    (tmp_path / "kpis.json").write_text(json.dumps(
        {k: v.public() for k, v in patrol.items()}, ensure_ascii=False, default=str))
