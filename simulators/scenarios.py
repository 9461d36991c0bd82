"""Fault scenarios: loading scenario files, and what a fault does to a device at a given time.

A scenario file (YAML) is a list of faults, each on named devices, with a start offset and a
duration relative to the run start. The format is documented at the top of
simulators/scenarios/faults.yaml. Everything here is pure: times are seconds since the run start.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from caretaker.durations import seconds as parse_duration  # the one grammar, in seconds
from simulators.devices import Reading, Value
from simulators.fleet import Device

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
KINDS = ("drift", "step", "flap", "silent", "bad_payload", "gauge_offset")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault on some devices: what it does, and its window relative to the run start."""

    kind: str
    devices: tuple[str, ...]
    start: float
    duration: float | None = None
    metric: str | None = None
    to: float | None = None
    by: float | None = None
    from_: float | None = None
    ramp: float | None = None
    set: Mapping[str, Value] = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    period: float | None = None
    lwt: bool = False
    payloads: tuple[str, ...] = ()
    every: float | None = None
    offset: float | None = None  # gauge_offset: what the guard's gauge adds to the true value

    @property
    def end(self) -> float | None:
        """Offset at which the fault stops (None: lasts to the end of the run)."""
        return None if self.duration is None else self.start + self.duration

    def active(self, offset: float) -> bool:
        """True while the fault is in effect at `offset` seconds after the run start."""
        return self.start <= offset and (self.end is None or offset < self.end)

    def matches(self, device: Device) -> bool:
        """True when one of the fault's device patterns names `device`."""
        return any(fnmatch.fnmatchcase(device.key if "/" in p else device.id, p)
                   for p in self.devices)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named list of faults."""

    name: str
    faults: tuple[Fault, ...] = ()
    description: str = ""

    def faults_for(self, device: Device) -> tuple[Fault, ...]:
        """The faults that apply to `device`."""
        return tuple(f for f in self.faults if f.matches(device))


NO_FAULTS = Scenario("none")


def _require(item: Mapping[str, Any], where: str, *names: str) -> None:
    missing = [n for n in names if item.get(n) is None]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")


def _number(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {name} must be a number, not {value!r}")
    return float(value)


def parse_fault(item: Mapping[str, Any], where: str = "fault") -> Fault:
    """A Fault from one entry of a scenario file; ValueError says what is wrong."""
    kind = item.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    devices = item.get("devices", item.get("device"))
    if isinstance(devices, str):
        devices = [devices]
    if not devices:
        raise ValueError(f"{where}: no devices")
    duration = None if item.get("duration") is None else parse_duration(item["duration"])
    fault = Fault(
        kind=kind,
        devices=tuple(str(d) for d in devices),
        start=parse_duration(item.get("start", 0)),
        duration=duration,
        metric=item.get("metric"),
        to=item.get("to"),
        by=item.get("by"),
        from_=item.get("from"),
        ramp=None if item.get("ramp") is None else parse_duration(item["ramp"]),
        set=dict(item.get("set") or {}),
        low=item.get("low"),
        high=item.get("high"),
        period=None if item.get("period") is None else parse_duration(item["period"]),
        lwt=bool(item.get("lwt", False)),
        payloads=tuple(item.get("payloads") or BAD_KINDS) if kind == "bad_payload" else (),
        every=None if item.get("every") is None else parse_duration(item["every"]),
        offset=_number(item.get("offset"), where, "offset"),
    )
    if kind == "drift":
        _require(item, where, "metric")
        if (fault.to is None) == (fault.by is None):
            raise ValueError(f"{where}: a drift needs `to` (a value) or `by` (a change), not both")
        if fault.by is not None and fault.from_ is not None:
            raise ValueError(f"{where}: `by` changes the device's own value: give no `from`")
        if fault.ramp is None and fault.duration is None:
            raise ValueError(f"{where}: a drift needs `ramp` or `duration`")
    elif kind == "step" and not fault.set:
        raise ValueError(f"{where}: a step needs `set: {{metric: value}}`")
    elif kind == "flap":
        _require(item, where, "metric", "low", "high", "period")
        if not fault.period:
            raise ValueError(f"{where}: period must be more than 0")
    elif kind == "gauge_offset":
        _require(item, where, "metric", "offset")
    elif kind == "bad_payload":
        unknown = [p for p in fault.payloads if p not in BAD_KINDS]
        if unknown:
            raise ValueError(f"{where}: unknown payloads {unknown}; known: {', '.join(BAD_KINDS)}")
        if fault.every is not None and fault.every <= 0:
            raise ValueError(f"{where}: every must be more than 0")
    return fault


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by packaged name (`faults`) or by file path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
        raise ValueError(f"no scenario {name_or_path!r} (packaged: {known}; or give a file path)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = data.get("faults") or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: `faults` must be a list")
    faults = tuple(parse_fault(item, f"{path.name}: fault {i + 1}") for i, item in enumerate(items))
    return Scenario(str(data.get("name", path.stem)), faults, str(data.get("description", "")))


def overrides(faults: tuple[Fault, ...], offset: float,
              normal: Reading | None = None) -> dict[str, Value]:
    """The metric values the active faults impose at `offset` s after the run start.

    `normal` is the device's reading without faults; a drift without `from` starts from it.
    """
    out: dict[str, Value] = {}
    for f in faults:
        if not f.active(offset):
            continue
        if f.kind == "step":
            out.update(f.set)
        elif f.kind == "flap":
            assert f.metric and f.period and f.low is not None and f.high is not None
            high = int((offset - f.start) // (f.period / 2)) % 2 == 0
            out[f.metric] = f.high if high else f.low
        elif f.kind == "drift":
            assert f.metric
            ramp = f.ramp if f.ramp is not None else f.duration
            frac = 1.0 if not ramp else min(1.0, (offset - f.start) / ramp)
            if f.by is not None:  # a slow change on top of the own value: noise, cycles stay
                base = (normal or {}).get(f.metric)
                if isinstance(base, int | float) and not isinstance(base, bool):
                    out[f.metric] = round(float(base) + f.by * frac, 3)
                continue
            assert f.to is not None
            origin = f.from_
            if origin is None:
                base = (normal or {}).get(f.metric, f.to)
                origin = float(base) if not isinstance(base, str) else float(f.to)
            out[f.metric] = round(origin + (f.to - origin) * frac, 3)
    return out


def gauge_offset(faults: tuple[Fault, ...], offset: float, metric: str) -> float:
    """What the active gauge_offset faults add to a guard's gauge reading of `metric`."""
    return sum(f.offset or 0.0 for f in faults
               if f.kind == "gauge_offset" and f.metric == metric and f.active(offset))


def needs_normal(faults: tuple[Fault, ...], offset: float) -> bool:
    """True when an active drift starts from the device's own reading."""
    return any(f.kind == "drift" and f.from_ is None and f.active(offset) for f in faults)


def silent(faults: tuple[Fault, ...], offset: float) -> bool:
    """True when the device publishes nothing at `offset`."""
    return any(f.kind == "silent" and f.active(offset) for f in faults)


def needs_own_client(faults: tuple[Fault, ...]) -> bool:
    """True when the device must have its own connection (a real Last Will to trigger)."""
    return any(f.kind == "silent" and f.lwt for f in faults)


# Bad payloads: name → builder(device, ts_ms, reading) → (topic, payload bytes).
def _telemetry_topic(site: str, device: str) -> str:
    return f"caretaker/v1/{site}/devices/{device}/telemetry"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _bad(device: Device, ts: int, reading: Reading, kind: str) -> tuple[str, bytes]:
    topic = _telemetry_topic(device.site, device.id)
    metric = next(iter(reading))
    good = {"ts": ts, "values": reading}
    if kind == "invalid_json":
        return topic, _dumps(good)[:-7]
    if kind == "not_utf8":
        return topic, b"\xff\xfe{\x00\x81garbage"
    if kind == "empty":
        return topic, b""
    if kind == "wrong_shape":
        return topic, b"[1,2,3]"
    if kind == "values_not_object":
        return topic, _dumps({"ts": ts, "values": list(reading.values())})
    if kind == "ts_not_number":
        return topic, _dumps({"ts": "yesterday", "values": reading})
    if kind == "ts_in_seconds":  # a common device bug: 1970 when read as milliseconds
        return topic, _dumps({"ts": ts // 1000, "values": reading})
    if kind == "ts_before_2000":
        return topic, _dumps({"ts": 915148800000, "values": reading})  # 1999-01-01
    if kind == "ts_far_future":
        return topic, _dumps({"ts": ts + 10 * 365 * 86400 * 1000, "values": reading})
    if kind == "wrong_value_type":
        return topic, _dumps({"ts": ts, "values": {metric: {"nested": [1, 2]}}})
    if kind == "long_device_id":
        long_id = (device.id + "-" + "x" * 65)[:80]
        return _telemetry_topic(device.site, long_id), _dumps(good)
    if kind == "long_site_id":
        return _telemetry_topic("s" * 65, device.id), _dumps(good)
    raise ValueError(f"unknown bad payload {kind!r}")


BAD_KINDS = (
    "invalid_json", "not_utf8", "empty", "wrong_shape", "values_not_object", "ts_not_number",
    "ts_in_seconds", "ts_before_2000", "ts_far_future", "wrong_value_type", "long_device_id",
    "long_site_id",
)


def bad_payload(kind: str, device: Device, ts_ms: int, reading: Reading) -> tuple[str, bytes]:
    """The (topic, payload) of one bad message of `kind`, made from a plausible reading."""
    return _bad(device, ts_ms, reading, kind)
