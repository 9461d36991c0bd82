"""Fault scenarios: the file format, and what each fault does to the stream at what time."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulators import scenarios as sc
from simulators.devices import MODELS
from simulators.fleet import fleet_from_config, load_config
from simulators.stream import Connect, Drop, Plan, Publish, events

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC).timestamp()
FLEET = tuple(fleet_from_config(load_config(), known_types=set(MODELS)))


def plan(scenario: sc.Scenario, *, minutes: float = 40, interval: float = 10,
         live: bool = True) -> Plan:
    return Plan(devices=FLEET, start=START, end=START + minutes * 60, interval=interval,
                seed=3, scenario=scenario, live=live)


def telemetry(events_: list, device: str) -> list[tuple[float, dict]]:
    """(time, values) of a device's telemetry, all shapes merged."""
    out = []
    for e in events_:
        if isinstance(e, Publish) and e.kind == "telemetry" and f"/devices/{device}/" in e.topic:
            body = json.loads(e.payload)
            items = body if isinstance(body, list) else [body]
            values: dict = {}
            for item in items:
                values.update(item["values"])
            out.append((e.time, values))
    return out


def test_parse_duration() -> None:
    assert sc.parse_duration("90s") == 90
    assert sc.parse_duration("10m") == 600
    assert sc.parse_duration("1h30m") == 5400
    assert sc.parse_duration("7d") == 7 * 86400
    assert sc.parse_duration(2.5) == 2.5
    assert sc.parse_duration("45") == 45
    for bad in ("10 minutes", "m", "-5s", "1x"):
        with pytest.raises(ValueError):
            sc.parse_duration(bad)


def test_packaged_scenarios_load_and_name_example_devices() -> None:
    names = sorted(p.stem for p in sc.SCENARIO_DIR.glob("*.yaml"))
    assert {"faults", "drift", "outage", "flapping", "bad-payloads"} <= set(names)
    for name in names:
        scenario = sc.load_scenario(name)
        assert scenario.faults, name
        for fault in scenario.faults:
            assert any(fault.matches(d) for d in FLEET), (name, fault)
    kinds = {f.kind for f in sc.load_scenario("faults").faults}
    assert kinds == set(sc.KINDS)
    assert any(f.kind == "silent" and f.lwt for f in sc.load_scenario("faults").faults)
    assert any(f.kind == "silent" and not f.lwt for f in sc.load_scenario("faults").faults)


def test_scenario_by_path_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("faults:\n  - {kind: step, devices: ['*/pump-*'], set: {running: false},"
                    " start: 1m, duration: 2m}\n")
    scenario = sc.load_scenario(str(path))
    assert scenario.name == "mine"
    assert [d.id for d in FLEET if scenario.faults[0].matches(d)] == ["pump-1", "pump-2", "pump-3"]
    for bad in ("faults: [{kind: melt, devices: [pump-1]}]",
                "faults: [{kind: drift, devices: [pump-1], metric: vibration, start: 1m}]",
                "faults: [{kind: step, set: {running: false}}]",
                "faults: [{kind: bad_payload, devices: [pump-1], payloads: [nonsense]}]",
                "faults: [{kind: flap, devices: [pump-1], metric: flow, low: 1, high: 2}]"):
        path.write_text(bad)
        with pytest.raises(ValueError):
            sc.load_scenario(str(path))
    with pytest.raises(ValueError, match="no scenario"):
        sc.load_scenario("no-such-scenario")


def test_drift_reaches_its_threshold_at_the_stated_time() -> None:
    # drift.yaml: pump-1 vibration 2 → 12 mm/s over 10 min, starting 5 min after the start.
    # A 7.1 mm/s alarm threshold is crossed 5 + 10 × (7.1 − 2) / (12 − 2) = 10.1 min in.
    stream = list(events(plan(sc.load_scenario("drift"), interval=5)))
    series = telemetry(stream, "pump-1")
    crossed = next(t for t, v in series if v["vibration"] >= 7.1)
    # within one 5 s reading (less 0.3 s: readings have 0.01 mm/s resolution)
    assert START + 10.1 * 60 - 0.3 <= crossed < START + 10.1 * 60 + 5
    before = [v["vibration"] for t, v in series if t < START + 5 * 60]
    assert max(before) < 3.5
    at_top = [v["vibration"] for t, v in series if START + 15 * 60 <= t < START + 25 * 60]
    assert at_top and all(v == 12 for v in at_top)
    after = [v["vibration"] for t, v in series if t >= START + 25 * 60]
    assert after and max(after) < 3.5
    # the bearing follows the vibration it suffers
    hot = [v["bearing_temp"] for t, v in series if START + 15 * 60 <= t < START + 25 * 60]
    cool = [v["bearing_temp"] for t, v in series if t < START + 5 * 60]
    assert min(hot) > max(cool) + 10


def test_drift_from_the_devices_own_value() -> None:
    fault = sc.parse_fault({"kind": "drift", "devices": ["pump-1"], "metric": "vibration",
                            "to": 10, "start": 0, "ramp": "100s"})
    assert sc.overrides((fault,), 0, {"vibration": 2.0}) == {"vibration": 2.0}
    assert sc.overrides((fault,), 50, {"vibration": 2.0}) == {"vibration": 6.0}
    assert sc.overrides((fault,), 500, {"vibration": 2.0}) == {"vibration": 10.0}


def test_step_and_flap() -> None:
    stream = list(events(plan(sc.load_scenario("faults"))))
    door = telemetry(stream, "elev-a1")
    during = [v for t, v in door if START + 8 * 60 <= t < START + 23 * 60]
    outside = [v for t, v in door if not START + 8 * 60 <= t < START + 23 * 60]
    assert during and all(v["door_fault"] is True and v["fault_code"] == "DOOR" for v in during)
    assert outside and not any(v["door_fault"] for v in outside)
    bearing = telemetry(stream, "pump-2")
    assert all(v["bearing_temp"] == 95 for t, v in bearing if START + 1200 <= t < START + 1800)
    assert all(v["bearing_temp"] < 70 for t, v in bearing if t < START + 1200)
    chiller = [(t, v["supply_temp"]) for t, v in telemetry(stream, "chiller-1")
               if START + 12 * 60 <= t < START + 24 * 60]
    crossings = sum(1 for (_, a), (_, b) in zip(chiller, chiller[1:], strict=False)
                    if (a > 9) != (b > 9))
    assert crossings >= 10  # a 2-minute period over 12 minutes: crosses 9 degC ~12 times
    assert chiller[0][1] == 9.4  # starts high


def test_silent_with_and_without_last_will() -> None:
    stream = list(events(plan(sc.load_scenario("faults"))))
    window = (START + 15 * 60, START + 25 * 60)
    for device in ("meter-pumps", "tank-roof-b"):
        times = [t for t, _ in telemetry(stream, device)]
        assert not [t for t in times if window[0] <= t < window[1]]
        assert [t for t in times if t < window[0]] and [t for t in times if t >= window[1]]
    key = "riverside/meter-pumps"
    lifecycle = [e for e in stream if getattr(e, "client", None) == key
                 and not (isinstance(e, Publish) and e.kind == "telemetry")]
    assert [(type(e).__name__, e.time) for e in lifecycle] == [
        ("Connect", START), ("Publish", START), ("Drop", window[0]),
        ("Connect", window[1]), ("Publish", window[1])]
    assert all(e.payload == b"online" and e.retain for e in lifecycle if isinstance(e, Publish))
    assert [e for e in lifecycle if isinstance(e, Connect)][0].will_topic == \
        "caretaker/v1/riverside/devices/meter-pumps/status"
    # a device silent without a will keeps the shared connection and is never dropped
    assert not [e for e in stream if isinstance(e, Connect | Drop) and "tank-roof-b" in e.client]
    # a backfill has no live connections: the device is only silent
    history = list(events(plan(sc.load_scenario("faults"), live=False)))
    assert not [e for e in history if isinstance(e, Connect | Drop)]
    assert not [e for e in history if isinstance(e, Publish) and e.kind == "status"]


def test_bad_payloads_of_every_kind() -> None:
    stream = list(events(plan(sc.load_scenario("faults"))))
    bad = [e for e in stream if isinstance(e, Publish) and e.kind == "bad"]
    # every 10 min from 2 min, while the 30-minute fault lasts: at 2, 12 and 22 min
    assert sorted({e.time - START for e in bad}) == [120, 720, 1320]
    assert len(bad) == 3 * len(sc.BAD_KINDS)
    first = [(e.topic, e.payload) for e in bad if e.time == START + 120]
    payloads = [p for _, p in first]
    with pytest.raises(ValueError):
        json.loads(payloads[0])  # invalid_json
    topics = {t for t, _ in first}
    assert any(len(t.split("/")[4]) > 64 for t in topics)  # long device id
    assert any(len(t.split("/")[2]) > 64 for t in topics)  # long site id
    decoded = []
    for p in payloads:
        try:
            decoded.append(json.loads(p))
        except ValueError:
            continue
    stamps = [d.get("ts") for d in decoded if isinstance(d, dict)]
    assert "yesterday" in stamps
    assert any(isinstance(s, int) and s < 946684800000 for s in stamps)  # before 2000
    assert any(isinstance(s, int) and s > (START + 365 * 86400) * 1000 for s in stamps)


def test_an_endless_run_streams_lazily_with_repeating_faults() -> None:
    fault = sc.parse_fault({"kind": "bad_payload", "devices": ["pump-1"], "every": "1m",
                            "payloads": ["invalid_json"]})
    endless = Plan(devices=FLEET, start=START, end=None, interval=10,
                   scenario=sc.Scenario("x", (fault,)))
    first = list(itertools.islice(events(endless), 20000))
    bad = [e for e in first if isinstance(e, Publish) and e.kind == "bad"]
    span = first[-1].time - START
    assert len(bad) == pytest.approx(span / 60, abs=1)
    assert [e.time for e in first] == sorted(e.time for e in first)
