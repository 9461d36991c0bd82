"""Slow drifts in the simulator (`drift` with `by`), and the forecast warning on them."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from rules.forecast import Hourly, forecast
from simulators import scenarios as sc
from simulators.devices import reading
from simulators.fleet import Device, fleet_from_config, load_config
from simulators.stream import faulty_reading

START = datetime(2026, 3, 2, tzinfo=UTC)


def _devices() -> dict[str, Device]:
    config = load_config(None)
    return {d.id: d for d in fleet_from_config(
        config, known_types={str(t["id"]) for t in config["device_types"]})}


def test_a_drift_by_keeps_the_devices_own_noise_and_cycle() -> None:
    fault = sc.parse_fault({"kind": "drift", "devices": ["pump-1"], "metric": "vibration",
                            "by": 2, "start": "1d", "ramp": "10d"})
    pump = _devices()["pump-1"]
    t0 = START.timestamp()
    for offset in (0.0, 86400.0, 6 * 86400.0 + 3600.0, 12 * 86400.0):
        t = t0 + offset
        normal = reading(pump, t, random.Random(5))
        faulty = faulty_reading(pump, t, random.Random(5), (fault,), offset)
        frac = min(1.0, max(0.0, (offset - 86400.0) / (10 * 86400.0)))
        expected = float(normal["vibration"]) + 2 * frac  # type: ignore[arg-type]
        assert float(faulty["vibration"]) == pytest.approx(  # type: ignore[arg-type]
            round(expected, 2), abs=0.011)


@pytest.mark.parametrize(("item", "word"), [
    ({"kind": "drift", "devices": ["x"], "metric": "m", "ramp": "1d"}, "`to`"),
    ({"kind": "drift", "devices": ["x"], "metric": "m", "to": 1, "by": 1, "ramp": "1d"}, "both"),
    ({"kind": "drift", "devices": ["x"], "metric": "m", "by": 1, "from": 3, "ramp": "1d"},
     "from"),
])
def test_bad_drifts_are_refused(item: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        sc.parse_fault(item)


def test_the_packaged_slow_drift_warns_after_a_seven_day_backfill() -> None:
    """What `caretaker simulate --backfill 7d --scenario slow-drift` leaves for the job."""
    scenario = sc.load_scenario("slow-drift")
    devices = _devices()
    start = START.timestamp()
    now = START + timedelta(days=7)
    cases = {"tank-fire": ("level", "<", 80.0), "pump-1": ("vibration", ">=", 4.5)}
    for device_id, (metric, op, threshold) in cases.items():
        device = devices[device_id]
        faults = scenario.faults_for(device)
        assert faults
        rng = random.Random(f"1:{device.key}")
        buckets: dict[int, list[float]] = defaultdict(list)
        crossed = False
        for k in range(7 * 1440):
            t = start + 30 + k * 60.0
            value = float(faulty_reading(device, t, rng, faults, t - start)[metric])  # type: ignore[arg-type]
            crossed |= value < threshold if op == "<" else value >= threshold
            buckets[int(t // 3600)].append(value)
        assert not crossed  # the backfill ends before the real alarm would fire
        window = start + 2 * 86400  # the job's default window: the last 5 days
        hours = [Hourly(datetime.fromtimestamp(h * 3600, UTC), sum(v) / len(v), min(v), max(v),
                        len(v)) for h, v in sorted(buckets.items()) if h * 3600 >= window]
        estimate = forecast(hours, op=op, threshold=threshold, now=now,
                            horizon=timedelta(days=7))
        assert estimate is not None and estimate.expected is not None, device_id
        assert estimate.confidence >= 0.99, (device_id, estimate)
        assert timedelta(0) < estimate.expected - now < timedelta(days=4), (device_id, estimate)
