"""Device models: believable readings as pure functions of (device, time, rng, fault overrides).

Each model returns one reading, a dict of metric → number, bool or string, with the metric
names of the example site's device types. Signals have noise, daily cycles in the site's
local time and correlated metrics (a pump's current follows its flow; a chiller's
return-supply difference and power follow its load). Counters (kWh, door cycles) and tank
levels are closed-form functions of time, so a reading needs no state from earlier ones.

`overrides` carries the values a fault imposes (metric → value); a model uses them in place
of its own value *before* deriving the metrics that depend on it (a vibrating pump's bearing
runs hot; a stopped pump has no flow).
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from simulators.fleet import Device

Value = float | bool | str
Reading = dict[str, Value]
Model = Callable[[Device, float, random.Random, Mapping[str, Value]], Reading]

DAY = 86400.0
# Counters integrate from here (2025-01-01 UTC); earlier readings just show smaller counts.
COUNTER_EPOCH = 1735689600.0
NO_FAULT = "OK"


@dataclass(frozen=True, slots=True)
class Harmonic:
    """A daily profile `base + Σ amp·cos(2π·k·(hour − peak)/24)` that can also be integrated."""

    base: float
    terms: tuple[tuple[float, int, float], ...]  # (amplitude, harmonic k, peak hour)

    def at(self, local_s: float) -> float:
        """The profile's value at a local time (seconds since the local epoch)."""
        h = local_s / 3600.0
        return self.base + sum(a * math.cos(2 * math.pi * k * (h - peak) / 24)
                               for a, k, peak in self.terms)

    def integral(self, local_s: float) -> float:
        """∫ profile dt from the local epoch to `local_s`, in profile-units × seconds."""
        total = self.base * local_s
        for a, k, peak in self.terms:
            period = DAY / k
            w = 2 * math.pi / period
            total += a / w * (math.sin(w * (local_s - peak * 3600.0))
                              - math.sin(w * (-peak * 3600.0)))
        return total


# Domestic water demand (0..1): trough around 03:00, a morning and a larger evening peak.
WATER_DEMAND = Harmonic(0.55, ((0.2, 1, 17.0), (0.2, 2, 7.75)))
# Electrical load of an estate, relative to its mean: low before dawn, high in the evening.
ELECTRIC_LOAD = Harmonic(1.0, ((0.3, 1, 18.5), (0.12, 2, 9.0)))
# Lift door cycles per hour, relative to the mean: commuter peaks, near-idle at night.
LIFT_TRAFFIC = Harmonic(1.0, ((0.55, 1, 14.0), (0.35, 2, 8.0)))
# Cooling load (0..1): afternoon peak.
COOLING_LOAD = Harmonic(0.55, ((0.3, 1, 15.0),))
# Plant-room ambient temperature, degC.
AMBIENT = Harmonic(24.0, ((3.0, 1, 15.0),))


@lru_cache(maxsize=65536)
def _constants(device: Device, names: tuple[str, ...], lows: tuple[float, ...],
               highs: tuple[float, ...]) -> dict[str, float]:
    rng = random.Random(zlib.crc32(device.key.encode()))
    return {n: rng.uniform(lo, hi) for n, lo, hi in zip(names, lows, highs, strict=True)}


def constants(device: Device, **ranges: tuple[float, float]) -> dict[str, float]:
    """Per-device constants drawn once from `ranges` (name=(low, high)), stable across runs."""
    names = tuple(ranges)
    return _constants(device, names, tuple(r[0] for r in ranges.values()),
                      tuple(r[1] for r in ranges.values()))


def local(device: Device, t: float) -> float:
    """Seconds since the local-time epoch, for daily cycles."""
    return t + device.utc_offset_s


def _num(overrides: Mapping[str, Value], name: str, default: float) -> float:
    value = overrides.get(name)
    return default if value is None or isinstance(value, str) else float(value)


def _flag(overrides: Mapping[str, Value], name: str, default: bool) -> bool:
    value = overrides.get(name)
    return default if value is None else bool(value)


def water_pump(device: Device, t: float, rng: random.Random,
               overrides: Mapping[str, Value]) -> Reading:
    """A domestic water booster pump; lead pump always runs, lag pumps join at high demand."""
    c = constants(device, rated_flow=(30.0, 45.0), nominal_vib=(1.7, 2.2))
    demand = WATER_DEMAND.at(local(device, t)) + rng.gauss(0, 0.02)
    join_at = (0.0, 0.62, 0.85)[min(device.index, 2)]
    running = _flag(overrides, "running", demand > join_at)
    if running:
        load = min(1.0, max(0.2, 0.35 + 0.65 * demand))
        flow = _num(overrides, "flow", c["rated_flow"] * load * (1 + rng.gauss(0, 0.03)))
        share = flow / c["rated_flow"]
        pressure = 0.47 - 0.04 * share + rng.gauss(0, 0.004)
        current = 12.0 + 28.0 * share + rng.gauss(0, 0.4)
        vibration = c["nominal_vib"] + 0.4 * share + rng.gauss(0, 0.12)
    else:
        flow = _num(overrides, "flow", 0.0)
        pressure = 0.44 + rng.gauss(0, 0.004)  # header pressure behind the check valve
        current = 0.0
        vibration = 0.1 + abs(rng.gauss(0, 0.03))
    vibration = _num(overrides, "vibration", vibration)
    ambient = AMBIENT.at(local(device, t))
    bearing = ambient + (4.0 if not running else 16.0 + 0.35 * current)
    nominal = c["nominal_vib"] + 0.4 if running else 0.1
    bearing += 1.6 * max(0.0, vibration - nominal)  # a rough bearing runs hot
    return {
        "outlet_pressure": round(_num(overrides, "outlet_pressure", pressure), 3),
        "flow": round(flow, 2),
        "vibration": round(max(0.0, vibration), 2),
        "motor_current": round(_num(overrides, "motor_current", max(0.0, current)), 1),
        "bearing_temp": round(_num(overrides, "bearing_temp", bearing + rng.gauss(0, 0.3)), 1),
        "running": running,
    }


def fire_pump(device: Device, t: float, rng: random.Random,
              overrides: Mapping[str, Value]) -> Reading:
    """A fire pump on standby at ~0.8 MPa, with the tests of GB 50974-2014 §14.0.4.

    Weekly automatic start test: Monday 10:00 + index × 15 min, 10 min, started by the
    controller's test timer (`start_mode` "auto"); monthly manual start: the first Wednesday
    of the month at 14:00 + index × 15 min, 10 min ("manual"). `start_mode` is the
    controller's state register: "standby" when stopped. Override `auto_test: false` (the
    test timer switched off) skips the weekly test; `manual_test: false` the monthly one.
    """
    loc = local(device, t)
    week_s = (loc + 3 * DAY) % (7 * DAY)  # 1970-01-01 was a Thursday: shift to Monday
    auto_start = 10 * 3600.0 + device.index * 900.0
    auto = _flag(overrides, "auto_test", True) and auto_start <= week_s < auto_start + 600.0
    day = datetime.fromtimestamp(loc, UTC)  # local calendar date (the offset is applied)
    manual_start = 14 * 3600.0 + device.index * 900.0
    day_s = loc % DAY
    manual = (_flag(overrides, "manual_test", True) and day.weekday() == 2 and day.day <= 7
              and manual_start <= day_s < manual_start + 600.0)
    running = _flag(overrides, "running", auto or manual)
    jockey = 0.015 * ((loc % 1800.0) / 1800.0)  # jockey pump sawtooth
    pressure = (1.05 + rng.gauss(0, 0.015)) if running else (0.79 + jockey + rng.gauss(0, 0.004))
    flow = 25.0 * (1 + rng.gauss(0, 0.03)) if running else 0.0  # through the test return line
    mode = ("manual" if manual else "auto") if running else "standby"
    return {
        "outlet_pressure": round(_num(overrides, "outlet_pressure", pressure), 3),
        "flow": round(_num(overrides, "flow", flow), 2),
        "running": running,
        "start_mode": str(overrides.get("start_mode", mode)),
    }


def jockey_pump(device: Device, t: float, rng: random.Random,
                overrides: Mapping[str, Value]) -> Reading:
    """A jockey pump (稳压泵) keeping the fire main between its start and stop pressures.

    The main leaks slowly from the stop pressure (0.85 MPa) to the start pressure (0.80 MPa)
    in `cycle` minus 3 min, then the pump runs 3 min to refill it: 16 starts a day. Override
    `cycle` (seconds) to model a leak (a shorter cycle, more starts).
    """
    cycle = max(600.0, _num(overrides, "cycle", 5400.0))
    run = 180.0
    start_p, stop_p = 0.80, 0.85
    c = constants(device, phase=(0.0, 1.0))
    at = (t / cycle + c["phase"]) % 1.0 * cycle
    running = at >= cycle - run
    if running:
        pressure = start_p + (stop_p - start_p) * (at - (cycle - run)) / run
    else:
        pressure = stop_p - (stop_p - start_p) * at / (cycle - run)
    running = _flag(overrides, "running", running)
    return {
        "outlet_pressure": round(_num(overrides, "outlet_pressure",
                                      pressure + rng.gauss(0, 0.002)), 3),
        "running": running,
    }


def elevator(device: Device, t: float, rng: random.Random,
             overrides: Mapping[str, Value]) -> Reading:
    """A passenger lift: car position, a door-cycle counter following traffic, door faults."""
    c = constants(device, floors=(18.0, 33.0), rate=(30.0, 60.0), start=(1e5, 9e5))
    floors = int(c["floors"])
    loc = local(device, t)
    traffic = LIFT_TRAFFIC.at(loc)
    cycles = c["start"] + c["rate"] * (LIFT_TRAFFIC.integral(loc)
                                       - LIFT_TRAFFIC.integral(local(device, COUNTER_EPOCH))) / 3600
    at_lobby = rng.random() < 0.25 + 0.35 * max(0.0, 1.0 - traffic)
    floor = 1 if at_lobby else rng.randint(1, floors)
    door_fault = _flag(overrides, "door_fault", False)
    code = overrides.get("fault_code")
    fault_code = str(code) if code is not None else ("DOOR" if door_fault else NO_FAULT)
    return {
        "car_floor": int(_num(overrides, "car_floor", floor)),
        "door_cycles": int(_num(overrides, "door_cycles", math.floor(cycles))),
        "door_fault": door_fault,
        "fault_code": fault_code,
    }


def chiller(device: Device, t: float, rng: random.Random,
            overrides: Mapping[str, Value]) -> Reading:
    """A water-cooled chiller: supply ~7 degC; return-supply gap and power follow the load."""
    c = constants(device, rated_kw=(250.0, 450.0))
    load = min(1.0, max(0.15, COOLING_LOAD.at(local(device, t)) + rng.gauss(0, 0.02)))
    supply = _num(overrides, "supply_temp", 7.0 + 0.4 * (load - 0.55) + rng.gauss(0, 0.1))
    power = c["rated_kw"] * (0.12 + 0.88 * load) * (1 + rng.gauss(0, 0.015))
    return {
        "supply_temp": round(supply, 2),
        "return_temp": round(_num(overrides, "return_temp",
                                  supply + 6.0 * load + rng.gauss(0, 0.08)), 2),
        "power_kw": round(_num(overrides, "power_kw", power), 1),
    }


def power_meter(device: Device, t: float, rng: random.Random,
                overrides: Mapping[str, Value]) -> Reading:
    """A power meter: kW on a daily cycle, kWh integrating it, voltage ~400 V sagging with load."""
    main = "main" in device.id
    c = constants(device, base_kw=(300.0, 500.0) if main else (40.0, 120.0), start=(1e4, 5e5))
    loc = local(device, t)
    shape = ELECTRIC_LOAD.at(loc)
    kw = _num(overrides, "kw", c["base_kw"] * shape * (1 + rng.gauss(0, 0.02)))
    since_epoch = ELECTRIC_LOAD.integral(loc) - ELECTRIC_LOAD.integral(local(device, COUNTER_EPOCH))
    kwh = c["start"] + c["base_kw"] * since_epoch / 3600
    voltage = 404.0 - 8.0 * (shape - 1.0) + rng.gauss(0, 1.2)
    pf = 0.91 + 0.02 * (shape - 1.0) + rng.gauss(0, 0.004)
    return {
        "kw": round(max(0.0, kw), 2),
        "kwh": round(_num(overrides, "kwh", kwh), 2),
        "voltage": round(_num(overrides, "voltage", voltage), 1),
        "power_factor": round(_num(overrides, "power_factor", min(0.99, pf)), 3),
    }


def water_tank(device: Device, t: float, rng: random.Random,
               overrides: Mapping[str, Value]) -> Reading:
    """A tank drawn down and refilled by its float valve/pump: a sawtooth in percent."""
    fire = "fire" in device.id
    c = constants(device, period=(20 * 3600.0, 28 * 3600.0) if fire else (2 * 3600.0, 4 * 3600.0),
                  phase=(0.0, 1.0))
    low, high = (92.0, 98.0) if fire else (55.0, 95.0)
    cycle = (t / c["period"] + c["phase"]) % 1.0
    fill = 0.15  # the last 15 % of each cycle is refilling
    level = (high - (high - low) * cycle / (1 - fill) if cycle < 1 - fill
             else low + (high - low) * (cycle - (1 - fill)) / fill)
    return {"level": round(_num(overrides, "level", level + rng.gauss(0, 0.2)), 1)}


def door_sensor(device: Device, t: float, rng: random.Random,
                overrides: Mapping[str, Value]) -> Reading:
    """A door contact with forced-entry detection: 0, until a fault forces the door (1)."""
    return {"forced": 1 if _flag(overrides, "forced", False) else 0}


def leak_sensor(device: Device, t: float, rng: random.Random,
                overrides: Mapping[str, Value]) -> Reading:
    """A floor leak sensor: 0 (dry), until a fault puts water on the floor (1)."""
    return {"water": 1 if _flag(overrides, "water", False) else 0}


MODELS: dict[str, Model] = {
    "water_pump": water_pump,
    "fire_pump": fire_pump,
    "jockey_pump": jockey_pump,
    "elevator": elevator,
    "chiller": chiller,
    "power_meter": power_meter,
    "water_tank": water_tank,
    "door_sensor": door_sensor,   # alarm verification by the nearest guard
    "leak_sensor": leak_sensor,
}


def reading(device: Device, t: float, rng: random.Random,
            overrides: Mapping[str, Value] | None = None) -> Reading:
    """One reading of `device` at epoch seconds `t`, with fault overrides applied."""
    return MODELS[device.type](device, t, rng, overrides or {})
