"""The simulator over a real broker: what a subscriber receives is what was planned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from simulators.fleet import load_config, valid_id
from simulators.publisher import Publisher
from simulators.run import PLANNED_STOP, Options, build_plan, simulate
from simulators.stream import Publish, events
from tests.fix_servers import Broker
from tests.simulators.subscriber import Subscriber

pytestmark = pytest.mark.e2e
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def site_copy(tmp_path: Path) -> tuple[Path, str]:
    """The example site under a fresh site id, so tests on the shared broker never mix."""
    config = load_config()
    site = f"t-{uuid.uuid4().hex[:10]}"
    config["site"]["id"] = site
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path, site


def run(mqtt: Broker, **options) -> None:
    simulate(Options(guards=False, progress=False, **options), target=mqtt.take("simulator"),
             now=datetime.now(UTC), device_logins=mqtt.devices)


def test_same_seed_gives_identical_messages(mqtt: Broker, tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    received = []
    for seed in (9, 9, 10):
        options = dict(config=config, seed=seed, backfill=3600, start=START, interval=30,
                       scenario="faults")
        plan, _ = build_plan(Options(guards=False, **options), now=datetime.now(UTC))
        expected = [(e.topic, e.payload) for e in events(plan) if isinstance(e, Publish)
                    and e.topic.startswith(f"caretaker/v1/{site}/")]
        sub = Subscriber(mqtt, f"caretaker/v1/{site}/#")
        run(mqtt, **options)
        got = sub.wait_for(len(expected))
        sub.close()
        received.append([(m.topic, m.payload) for m in got])
        assert received[-1] == expected  # in the planned order, nothing lost or added
    assert len(received[0]) > 18 * 110
    assert received[0] == received[1]
    assert received[0] != received[2]


def test_backfill_one_day_of_the_example_site(mqtt: Broker, tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    sub = Subscriber(mqtt, f"caretaker/v1/{site}/#")
    before = time.time()
    run(mqtt, config=config, backfill=86400)
    expected = 21 * 1440  # 21 devices, one reading a minute for 24 h
    got = sub.wait_for(expected)
    sub.close()
    assert len(got) == expected
    assert {m.topic.split("/")[5] for m in got} == {"telemetry"}  # history only, no status
    per_device = Counter(m.topic.split("/")[4] for m in got)
    assert set(per_device.values()) == {1440}
    stamps = []
    for m in got:
        body = json.loads(m.payload)
        for item in body if isinstance(body, list) else [body]:
            stamps.append(item["ts"] / 1000)
    assert max(stamps) <= before
    assert min(stamps) >= before - 86400 - 60
    assert max(stamps) - min(stamps) > 86400 - 120


def test_a_dropped_connection_makes_the_broker_send_the_last_will(
        mqtt: Broker) -> None:
    site = f"t-{uuid.uuid4().hex[:8]}"
    topic = f"caretaker/v1/{site}/devices/meter-1/status"
    sub = Subscriber(mqtt, topic)
    publisher = Publisher(mqtt.take("simulator"), device_logins=mqtt.devices([f"{site}/meter-1"]))
    publisher.open(f"{site}/meter-1", topic)
    publisher.publish(topic, b"online", retain=True, client=f"{site}/meter-1")
    assert [m.payload for m in sub.wait_for(1)] == [b"online"]
    publisher.drop(f"{site}/meter-1")  # nobody publishes `offline`: only the broker, as the will
    got = sub.wait_for(2, timeout=10)
    publisher.close()
    sub.close()
    assert [m.payload for m in got] == [b"online", b"offline"]
    assert got[1].user_properties == (("source", "lwt"),) and got[0].user_properties == ()
    late = Subscriber(mqtt, topic)  # the will is retained
    retained = late.wait_for(1, timeout=5)
    late.close()
    assert [(m.payload, m.retain) for m in retained] == [(b"offline", True)]


def test_silent_with_last_will_during_a_run(mqtt: Broker, tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    scenario = tmp_path / "lwt.yaml"
    scenario.write_text("faults:\n"
                        "  - {kind: silent, devices: [meter-pumps], lwt: true, start: 20s,"
                        " duration: 40s}\n"
                        "  - {kind: silent, devices: [tank-roof-b], start: 20s, duration: 40s}\n")
    status = Subscriber(mqtt, f"caretaker/v1/{site}/devices/+/status")
    telemetry = Subscriber(mqtt, f"caretaker/v1/{site}/devices/+/telemetry")
    began = time.monotonic()
    run(mqtt, config=config, scenario=str(scenario), speed=20, duration=120, interval=5)
    ended = time.monotonic()
    got = status.wait_for(2 * 18 + 2)
    status.close()
    readings = telemetry.wait_for(0, timeout=1)
    telemetry.close()

    def of(device: str) -> list:
        return [m for m in got if m.topic.split("/")[4] == device]

    planned = PLANNED_STOP  # the run's orderly end: a planned stop, not a will
    meter = of("meter-pumps")
    assert [m.payload for m in meter] == [b"online", b"offline", b"online", planned]
    will = meter[1]
    # the will came when the connection dropped (20 s simulated = 1 s in), not at the end
    assert began + 0.5 < will.at < ended - 2.5
    assert meter[2].at - will.at > 1.0  # back after 40 s simulated = 2 s
    # a device silent without a will: no status change, just no data for a while
    assert [m.payload for m in of("tank-roof-b")] == [b"online", planned]
    tank = [json.loads(m.payload) for m in readings if "/tank-roof-b/" in m.topic]
    stamps = sorted((b[0] if isinstance(b, list) else b)["ts"] for b in tank)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert max(gaps) >= 40_000 and sorted(gaps)[-2] <= 5_000
    # everyone else stays online until the run ends
    assert all([m.payload for m in of(d)] == [b"online", planned]
               for d in {m.topic.split("/")[4] for m in got} - {"meter-pumps"})


def test_bad_payload_fault_publishes_the_bad_payloads(mqtt: Broker,
                                                      tmp_path: Path) -> None:
    config, site = site_copy(tmp_path)
    options = dict(config=config, scenario="bad-payloads", backfill=300, start=START)
    plan, _ = build_plan(Options(guards=False, **options), now=datetime.now(UTC))
    expected = [(e.topic, e.payload) for e in events(plan)
                if isinstance(e, Publish) and e.kind == "bad"]
    assert len(expected) == 5 * 12
    sub = Subscriber(mqtt, "caretaker/v1/+/devices/+/telemetry")
    run(mqtt, **options)
    got = sub.wait_for(len(expected) + 20 * 5)
    sub.close()
    bad = [(m.topic, m.payload) for m in got
           if not m.topic.startswith(f"caretaker/v1/{site}/") or "/pump-3-x" in m.topic
           or not _good(m.payload)]
    assert Counter(bad) == Counter(expected)


def _good(payload: bytes) -> bool:
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    items = body if isinstance(body, list) else [body]
    return all(isinstance(i, dict) and isinstance(i.get("values"), dict)
               and isinstance(i.get("ts"), int) and 946684800000 < i["ts"] < 2e12
               and all(not isinstance(v, dict | list) for v in i["values"].values())
               for i in items)


def test_cli_simulates_a_generated_fleet(mqtt: Broker) -> None:
    sub = Subscriber(mqtt, "caretaker/v1/+/devices/+/+")
    env = {**os.environ, "CARETAKER_MQTT_URL": mqtt.url(),
           "CARETAKER_STATE_DIR": str(mqtt.state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "stack.cli", "simulate", "--devices", "250",
         "--duration", "3s", "--interval", "1s", "--seed", "4"],
        env=env, capture_output=True, text=True, timeout=60)
    got = [m for m in sub.wait_for(250 * 3 + 500)
           if m.topic.split("/")[2].startswith("sim-site-")]
    sub.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("published")
    telemetry = {m.topic.split("/")[2] + "/" + m.topic.split("/")[4]
                 for m in got if m.topic.endswith("/telemetry")}
    assert len(telemetry) == 250
    assert all(valid_id(k.split("/")[0]) and valid_id(k.split("/")[1]) for k in telemetry)
    assert {k.split("/")[0] for k in telemetry} == {"sim-site-001", "sim-site-002",
                                                    "sim-site-003"}
    status = Counter((m.topic, m.payload) for m in got if m.topic.endswith("/status"))
    assert sum(1 for (_, p) in status if p == b"online") == 250
