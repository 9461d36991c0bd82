"""The simulator's ground truth, pure: faults with the alarms the rules give, patrol visits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from caretaker.site_config import example_document
from simulators import scenarios as sc
from simulators import truth
from simulators.fleet import Device
from simulators.guards import Rates, plan_scans
from simulators.run import Options, build_plan, write_truth

START = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)   # 00:00 Monday in Shanghai
PUMP = Device("s", "pump-1", "water_pump")
CONFIG: dict[str, Any] = {
    "devices": [{"id": "pump-1", "type": "water_pump"}],
    "rules": [
        {"id": "vib", "device_type": "water_pump", "metric": "vibration", "op": ">=",
         "levels": [{"severity": "warning", "threshold": 4.5},
                    {"severity": "major", "threshold": 7.1},
                    {"severity": "critical", "threshold": 11.2}]},
        {"id": "hot", "device_type": "water_pump", "metric": "bearing_temp", "op": ">=",
         "threshold": 80, "for": "5m", "severity": "major"},
        {"id": "warm", "device_type": "water_pump", "metric": "bearing_temp", "op": ">=",
         "threshold": 60, "severity": "warning"},
        {"id": "off", "kind": "offline", "timeout": "5m", "severity": "major"},
        {"id": "lift", "device_type": "elevator", "metric": "door_fault", "op": ">=",
         "threshold": 1, "kind": "count", "count": 3, "severity": "major"},
    ],
    "work_order_policy": {"open_at": "minor"},
}


def alarms(fault: dict[str, Any], device: Device = PUMP) -> list[dict[str, Any]]:
    return truth.expected_alarms(sc.parse_fault(fault), device, CONFIG, interval=60,
                                 run_seconds=86400)


def test_a_fault_gets_the_severity_the_rules_give() -> None:
    drift = {"kind": "drift", "devices": ["pump-1"], "metric": "vibration", "to": 8,
             "duration": "30m"}
    assert alarms(drift) == [{"rule": "vib", "severity": "major", "ticket": True}]
    assert alarms({**drift, "to": 12})[0]["severity"] == "critical"
    step = {"kind": "step", "devices": ["pump-1"], "set": {"bearing_temp": 95},
            "duration": "30m"}
    assert alarms(step) == [{"rule": "hot", "severity": "major", "ticket": True},
                            {"rule": "warm", "severity": "warning", "ticket": False}]
    # shorter than the hold time (plus a reading): only the rule without one fires
    assert [a["rule"] for a in alarms({**step, "duration": "5m"})] == ["warm"]
    assert alarms({"kind": "silent", "devices": ["pump-1"], "duration": "10m"}) == [
        {"rule": "off", "severity": "major", "ticket": True}]
    assert alarms({"kind": "silent", "devices": ["pump-1"], "duration": "4m"}) == []
    lift = Device("s", "elev-1", "elevator")
    CONFIG["devices"].append({"id": "elev-1", "type": "elevator"})
    door = {"kind": "step", "devices": ["elev-1"], "set": {"door_fault": True},
            "duration": "2m"}
    assert alarms(door, lift) == []                      # fewer than 3 readings
    assert alarms({**door, "duration": "10m"}, lift)[0]["rule"] == "lift"


def test_expected_faults_count_repeats_per_device_and_rule() -> None:
    doc = {"repeat_within_seconds": 7 * 86400, "faults": [
        {"site": "s", "device": "p", "start": "2026-11-23T01:00:00+00:00",
         "alarms": [{"rule": "hot", "severity": "major", "ticket": True}]},
        {"site": "s", "device": "p", "start": "2026-11-23T05:00:00+00:00",
         "alarms": [{"rule": "hot", "severity": "major", "ticket": True},
                    {"rule": "warm", "severity": "warning", "ticket": False}]},
        {"site": "s", "device": "q", "start": "2026-11-23T05:00:00+00:00",
         "alarms": [{"rule": "hot", "severity": "major", "ticket": True}]},
        {"site": "other", "device": "p", "start": "2026-11-23T05:00:00+00:00",
         "alarms": [{"rule": "hot", "severity": "major", "ticket": True}]}]}
    got = truth.expected_faults(doc, "s")
    assert (got["faults"], got["repeats"]) == (3, 1)
    assert got["by_device"] == {"p": {"faults": 2, "repeats": 1},
                                "q": {"faults": 1, "repeats": 0}}


def test_patrol_truth_lists_every_visit_as_the_guards_plan_made_it(tmp_path: Path) -> None:
    rates = {"late": 0.15, "missed": 0.1, "out_of_order": 0.6, "repeated": 0.1,
             "offline_batch": 0.2, "missed_run": 0.1}
    opts = Options(backfill=86400, start=START, seed=3, guard_rates=rates,
                   truth=tmp_path / "t.json", interval=600)
    plan, _ = build_plan(opts, now=START + timedelta(days=3))
    write_truth(plan, opts)
    doc = truth.read(tmp_path / "t.json")
    assert doc["start"] == START.isoformat() and doc["seed"] == 3
    assert len(doc["devices"]) == len(plan.devices)
    guards = plan_scans(example_document(), start=START, end=START + timedelta(days=1), seed=3,
                        rates=Rates.of(rates))
    assert len(doc["patrol"]["runs"]) == len(guards.runs)
    kinds = {i["kind"] for i in doc["patrol"]["injected"]}
    assert {"late", "missed", "out_of_order", "repeated", "missed_run"} <= kinds
    visits = [v for r in doc["patrol"]["runs"] for v in r["visits"]]
    assert sum(v["timing"] == "missed" for v in visits) >= sum(
        1 for i in doc["patrol"]["injected"] if i["kind"] == "missed")
    assert any(v["out_of_order"] for v in visits)
    exp = truth.expected_patrol(doc, "riverside", START, START + timedelta(days=1))
    total = sum(c["expected"] for c in exp["by_route"].values())
    assert total == sum(c["expected"] for c in exp["by_guard"].values())
    assert total == sum(1 for v in visits if not v["equipment"])
    assert exp["inspection_by_route"]["equipment-daily"]["due"] == 1
    # a run nobody walked, of a post, is counted for the post
    posts = [r for r in doc["patrol"]["runs"] if r["post"]
             and all(v["scan_time"] is None for v in r["visits"])]
    if posts:
        assert f"post:{posts[0]['post']}" in exp["by_guard"]


def test_an_endless_run_has_no_truth(tmp_path: Path) -> None:
    opts = Options(truth=tmp_path / "t.json")
    plan, _ = build_plan(opts, now=START)
    with pytest.raises(ValueError, match="--duration or --backfill"):
        write_truth(plan, opts)
