"""Device models: readings stay in believable ranges and correlated metrics move together."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime

import pytest

from simulators.devices import MODELS, reading
from simulators.fleet import Device, fleet_from_config, load_config

SHANGHAI = 8 * 3600
DAY0 = datetime(2026, 11, 23, tzinfo=UTC).timestamp() - SHANGHAI  # local midnight


def series(device: Device, *, hours: float = 48, step: float = 300, seed: int = 7):
    """Readings every `step` s for `hours`, from a local midnight."""
    rng = random.Random(seed)
    times = [DAY0 + i * step for i in range(int(hours * 3600 / step))]
    return times, [reading(device, t, rng) for t in times]


def dev(type_id: str, device_id: str = "x-1", index: int = 0) -> Device:
    return Device("site-a", device_id, type_id, index, "", SHANGHAI)


def test_models_publish_exactly_the_example_metrics() -> None:
    config = load_config()
    declared = {t["id"]: set(t["metrics"]) for t in config["device_types"]}
    assert set(MODELS) == set(declared)
    for device in fleet_from_config(config, known_types=set(MODELS)):
        assert set(reading(device, DAY0, random.Random(1))) == declared[device.type], device.id


def test_water_pump_ranges_and_correlations() -> None:
    _, readings = series(dev("water_pump"))
    running = [r for r in readings if r["running"]]
    assert len(running) == len(readings)  # the lead pump always runs
    for r in running:
        assert 0.40 <= r["outlet_pressure"] <= 0.50
        assert 5 <= r["flow"] <= 50
        assert 1.0 <= r["vibration"] <= 3.5
        assert 15 <= r["motor_current"] <= 45
        assert 30 <= r["bearing_temp"] <= 65
    flow = [r["flow"] for r in running]
    current = [r["motor_current"] for r in running]
    pressure = [r["outlet_pressure"] for r in running]
    assert statistics.correlation(flow, current) > 0.9
    assert statistics.correlation(flow, pressure) < -0.5  # pump curve: more flow, less head
    assert statistics.mean(r["vibration"] for r in running) == pytest.approx(2.2, abs=0.4)


def test_water_pump_daily_cycle_and_lag_pump() -> None:
    times, readings = series(dev("water_pump"), hours=24)
    night = [r["flow"] for t, r in zip(times, readings, strict=True)
             if 2 <= ((t + SHANGHAI) % 86400) / 3600 < 4]
    evening = [r["flow"] for t, r in zip(times, readings, strict=True)
               if 19 <= ((t + SHANGHAI) % 86400) / 3600 < 21]
    assert statistics.mean(evening) > 1.5 * statistics.mean(night)
    _, lag = series(dev("water_pump", "x-2", index=1), hours=24)
    stopped = [r for r in lag if not r["running"]]
    assert 0 < len(stopped) < len(lag)  # the lag pump joins only at high demand
    assert all(r["flow"] == 0 and r["motor_current"] == 0 and r["vibration"] < 0.5
               for r in stopped)


def test_fire_pump_standby_and_weekly_test_run() -> None:
    times, readings = series(dev("fire_pump"), hours=24 * 7, step=60)
    standby = [r["outlet_pressure"] for r in readings if not r["running"]]
    assert all(0.75 <= p <= 0.85 for p in standby)
    assert statistics.mean(standby) == pytest.approx(0.8, abs=0.02)
    runs = [t for t, r in zip(times, readings, strict=True) if r["running"]]
    assert len(runs) == 10  # ten minutes, once a week
    when = datetime.fromtimestamp(runs[0] + SHANGHAI, UTC)
    assert (when.weekday(), when.hour) == (0, 10)  # Monday 10:00 local
    assert all(r["outlet_pressure"] > 0.95 for r in readings if r["running"])


def test_elevator_counter_floor_and_faults() -> None:
    times, readings = series(dev("elevator"), hours=48, step=60)
    cycles = [r["door_cycles"] for r in readings]
    assert all(b >= a for a, b in zip(cycles, cycles[1:], strict=False))
    per_day = cycles[1439] - cycles[0]
    assert 500 <= per_day <= 2000
    hour = [((t + SHANGHAI) % 86400) / 3600 for t in times]
    rush = cycles[hour.index(9.0)] - cycles[hour.index(7.0)]
    small = cycles[hour.index(4.0)] - cycles[hour.index(2.0)]
    assert rush > 3 * small  # commuter peak, quiet night
    assert all(1 <= r["car_floor"] <= 33 for r in readings)
    assert len({r["car_floor"] for r in readings}) > 10
    assert not any(r["door_fault"] for r in readings)
    assert {r["fault_code"] for r in readings} == {"OK"}
    faulty = reading(dev("elevator"), DAY0, random.Random(1), {"door_fault": True})
    assert faulty["door_fault"] is True and faulty["fault_code"] != "OK"


def test_chiller_temperatures_follow_load() -> None:
    _, readings = series(dev("chiller"))
    assert all(6.0 <= r["supply_temp"] <= 8.0 for r in readings)
    assert all(r["return_temp"] > r["supply_temp"] for r in readings)
    assert max(r["return_temp"] for r in readings) == pytest.approx(12, abs=1.5)
    delta = [r["return_temp"] - r["supply_temp"] for r in readings]
    power = [r["power_kw"] for r in readings]
    assert statistics.correlation(delta, power) > 0.9
    assert min(power) > 0


def test_power_meter_kwh_integrates_kw() -> None:
    times, readings = series(dev("power_meter", "meter-main"), hours=24, step=60)
    kwh = [r["kwh"] for r in readings]
    assert all(b >= a for a, b in zip(kwh, kwh[1:], strict=False))
    energy = sum(r["kw"] for r in readings) / 60  # kW × 1/60 h
    assert kwh[-1] - kwh[0] == pytest.approx(energy, rel=0.03)
    assert all(380 <= r["voltage"] <= 420 for r in readings)
    assert all(0.85 <= r["power_factor"] <= 0.97 for r in readings)
    assert statistics.mean(r["power_factor"] for r in readings) == pytest.approx(0.92, abs=0.02)
    kw = [r["kw"] for r in readings]
    assert max(kw) > 1.5 * min(kw)  # a daily cycle, not a flat line
    volts = [r["voltage"] for r in readings]
    assert statistics.correlation(kw, volts) < -0.5  # voltage sags under load


def test_water_tank_drawn_down_and_refilled() -> None:
    _, readings = series(dev("water_tank", "tank-roof-a"), hours=24, step=60)
    level = [r["level"] for r in readings]
    assert all(50 <= v <= 100 for v in level)
    assert max(level) > 90 and min(level) < 60
    _, coarse = series(dev("water_tank", "tank-roof-a"), hours=24, step=600)
    steps = [b["level"] - a["level"] for a, b in zip(coarse, coarse[1:], strict=False)]
    falls = [d for d in steps if d < -1]
    rises = [d for d in steps if d > 1]
    assert len(falls) > 3 * len(rises) > 0  # slow draw-down, quick refill
    assert statistics.mean(rises) > 3 * -statistics.mean(falls)
    _, fire = series(dev("water_tank", "tank-fire"), hours=24, step=60)
    assert all(90 <= r["level"] <= 100 for r in fire)


def test_readings_are_a_function_of_device_time_and_rng() -> None:
    device = dev("water_pump")
    a = [reading(device, DAY0 + i, random.Random(5)) for i in range(5)]
    b = [reading(device, DAY0 + i, random.Random(5)) for i in range(5)]
    assert a == b
    assert reading(device, DAY0, random.Random(5)) != reading(device, DAY0, random.Random(6))


def test_fault_overrides_propagate_to_correlated_metrics() -> None:
    device = dev("water_pump")
    normal = reading(device, DAY0, random.Random(3))
    rough = reading(device, DAY0, random.Random(3), {"vibration": 12.0})
    assert rough["vibration"] == 12.0
    assert rough["bearing_temp"] > normal["bearing_temp"] + 10
    stopped = reading(device, DAY0, random.Random(3), {"running": False})
    assert stopped["flow"] == 0 and stopped["motor_current"] == 0
