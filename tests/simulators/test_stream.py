"""The message stream and run plan: reproducible, complete, and valid per the MQTT interface."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from simulators import scenarios as sc
from simulators.devices import MODELS
from simulators.fleet import (
    DEVICES_PER_SITE,
    fleet_from_config,
    generate_fleet,
    load_config,
    valid_id,
)
from simulators.run import Options, Stats, build_plan, pace
from simulators.stream import Connect, Drop, Plan, Publish, events, expected_telemetry

NOW = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC).timestamp()
FLEET = tuple(fleet_from_config(load_config(), known_types=set(MODELS)))


def stream(seed: int, **kw) -> list:
    p = Plan(devices=FLEET, start=START, end=START + 3600, interval=10, seed=seed,
             scenario=sc.load_scenario("faults"), **kw)
    return list(events(p))


def test_same_seed_same_messages_other_seed_other_values() -> None:
    a, b = stream(5), stream(5)
    assert a == b
    assert len(a) > 6000
    c = stream(6)
    assert [e.payload for e in a if isinstance(e, Publish)] != \
        [e.payload for e in c if isinstance(e, Publish)]


def test_events_in_time_order_with_every_topic_valid() -> None:
    evs = stream(1, receive_time=True)
    assert [e.time for e in evs] == sorted(e.time for e in evs)
    shapes: Counter[str] = Counter()
    for e in evs:
        if not isinstance(e, Publish) or e.kind != "telemetry":
            continue
        parts = e.topic.split("/")
        assert parts[:2] == ["caretaker", "v1"] and parts[3] == "devices"
        assert parts[5] == "telemetry" and valid_id(parts[2]) and valid_id(parts[4])
        body = json.loads(e.payload)
        if isinstance(body, list):
            shapes["array"] += 1
            assert all(item["ts"] == round(e.time * 1000) for item in body)
        elif "ts" in body:
            shapes["ts"] += 1
            assert body["ts"] == round(e.time * 1000) and isinstance(body["values"], dict)
        else:
            shapes["flat"] += 1
            assert all(isinstance(v, int | float | bool | str) for v in body.values())
    total = sum(shapes.values())
    assert shapes["ts"] > 0.8 * total
    assert 0.02 * total < shapes["array"] < 0.1 * total
    assert 0.02 * total < shapes["flat"] < 0.1 * total
    # payloads without a timestamp only when simulated time is the receive time
    assert not any(isinstance(e, Publish) and e.kind == "telemetry"
                   and b'"ts"' not in e.payload for e in stream(1, receive_time=False))


def test_live_run_announces_every_device_online_at_the_start() -> None:
    evs = stream(1)
    online = [e for e in evs if isinstance(e, Publish) and e.kind == "status"
              and e.time == START]
    assert sorted(e.topic.split("/")[4] for e in online) == sorted(d.id for d in FLEET)
    assert all(e.payload == b"online" and e.retain for e in online)
    first_telemetry = min(e.time for e in evs if isinstance(e, Publish) and e.kind == "telemetry")
    assert evs.index(online[-1]) < [e.time for e in evs].index(first_telemetry)


def test_expected_telemetry_counts_the_stream() -> None:
    for scenario in (sc.NO_FAULTS, sc.load_scenario("faults")):
        p = Plan(devices=FLEET, start=START, end=START + 7200, interval=30, seed=2,
                 scenario=scenario)
        count = sum(1 for e in events(p) if isinstance(e, Publish) and e.kind == "telemetry")
        assert expected_telemetry(p) == count
    whole = Plan(devices=FLEET, start=START, end=START + 86400, interval=60, live=False)
    assert expected_telemetry(whole) == len(FLEET) * 1440


@pytest.mark.parametrize("n", [1, 7, 250, 1234])
def test_generated_fleet_has_n_valid_devices(n: int) -> None:
    fleet = generate_fleet(n)
    assert len(fleet) == n
    assert len({d.key for d in fleet}) == n
    assert all(valid_id(d.site) and valid_id(d.id) for d in fleet)
    assert len({d.site for d in fleet}) == math.ceil(n / DEVICES_PER_SITE)
    if n >= 12:
        # door and leak sensors (alarm verification) come only from site files
        assert {d.type for d in fleet} == set(MODELS) - {"door_sensor", "leak_sensor"}
    assert generate_fleet(n) == fleet


def test_build_plan_backfill_live_speed_and_rate() -> None:
    plan, speed = build_plan(Options(backfill=86400, guards=False), now=NOW)
    assert speed == math.inf and not plan.live and plan.interval == 60
    assert plan.start % 60 == 0 and plan.end == plan.start + 86400
    assert plan.end <= NOW.timestamp() and plan.start >= NOW.timestamp() - 86400 - 60
    again, _ = build_plan(Options(backfill=86400, guards=False), now=NOW + timedelta(seconds=20))
    assert again.start == plan.start  # reruns cover the same instants

    live, speed = build_plan(Options(duration=600, guards=False), now=NOW)
    assert speed == 1 and live.live and live.receive_time and live.interval == 10
    assert (live.start, live.end) == (NOW.timestamp(), NOW.timestamp() + 600)

    fast, speed = build_plan(Options(duration=3600, speed=60, guards=False), now=NOW)
    assert speed == 60 and not fast.receive_time
    assert fast.end == NOW.timestamp()  # sped up: timestamps never pass the wall clock

    loaded, speed = build_plan(Options(devices=500, rate=5000), now=NOW)
    assert speed == 1 and loaded.interval == pytest.approx(0.1) and len(loaded.devices) == 500
    with pytest.raises(ValueError, match="--devices"):
        build_plan(Options(devices=5, rate=50000), now=NOW)
    with pytest.raises(ValueError):
        build_plan(Options(devices=5, config=sc.SCENARIO_DIR / "faults.yaml"), now=NOW)

    fixed, _ = build_plan(Options(start=datetime(2026, 1, 1, tzinfo=UTC), duration=60,
                                  guards=False), now=NOW)
    assert fixed.start == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert not fixed.receive_time


class Recorder:
    """A sink that records what it is asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def open(self, key: str, will_topic: str) -> None:
        self.calls.append(("open", key))

    def drop(self, key: str) -> None:
        self.calls.append(("drop", key))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                client: str | None = None) -> None:
        self.calls.append(("publish", topic, client))


def test_pace_runs_the_simulated_clock_at_speed() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    evs = [e for e in stream(1) if e.time < START + 600]
    sink, stats = Recorder(), Stats()
    pace(evs, sink, start=START, speed=10, stats=stats, monotonic=lambda: now[0], sleep=sleep)
    assert now[0] == pytest.approx((evs[-1].time - START) / 10, abs=0.01)
    assert stats.counts["telemetry"] == sum(1 for e in evs if getattr(e, "kind", "") ==
                                            "telemetry")
    assert ("open", "riverside/meter-pumps") in sink.calls
    now[0], slept[:] = 0.0, []
    pace(evs, Recorder(), start=START, speed=math.inf, stats=Stats(),
         monotonic=lambda: now[0], sleep=sleep)
    assert slept == []  # a backfill never waits
    assert all(isinstance(e, Publish | Connect | Drop) for e in evs)
