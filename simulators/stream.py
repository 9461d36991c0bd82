"""The message stream of a simulation run: every publish, connect and drop, in time order.

Pure and deterministic: the same plan (fleet, scenario, start, interval, seed) gives the same
events, whatever the wall clock. The runner decides when each event is executed (live, sped
up, or at once for a backfill); the publisher executes it over MQTT.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators import scenarios as sc
from simulators.devices import Reading, reading
from simulators.fleet import Device

# Telemetry payload shapes (DESIGN "MQTT interface"): mostly {"ts", "values"}, some arrays,
# and, when timestamps can be the receive time (live at real speed), some bare value objects.
ARRAY_SHARE = 0.05
FLAT_SHARE = 0.05
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish `payload` on `topic` at simulated time `time` (epoch s).

    `client` names the device whose own connection sends it; None means the shared connection.
    """

    time: float
    topic: str
    payload: bytes
    retain: bool = False
    client: str | None = None
    kind: str = "telemetry"


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a device's own connection, with its Last Will `offline` (retained) on `will_topic`."""

    time: float
    client: str
    will_topic: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Close a device's own connection without DISCONNECT, so the broker publishes its will."""

    time: float
    client: str


Event = Publish | Connect | Drop


@dataclass(frozen=True)
class Plan:
    """What to simulate: the fleet, faults, time span, reading interval and seed.

    `live` runs keep device connections and status topics (backfills only write history);
    `receive_time` allows payloads without a timestamp (only right when simulated time is
    the wall clock). `sites` are site configurations whose guards walk their routes.
    """

    devices: tuple[Device, ...]
    start: float
    end: float | None
    interval: float
    seed: int = 0
    scenario: sc.Scenario = sc.NO_FAULTS
    live: bool = True
    receive_time: bool = False
    sites: tuple[dict[str, Any], ...] = field(default=())
    guard_rates: Any = None


def telemetry_topic(device: Device) -> str:
    """The device's telemetry topic."""
    return f"caretaker/v1/{device.site}/devices/{device.id}/telemetry"


def status_topic(device: Device) -> str:
    """The device's status topic (`online` / `offline`, retained)."""
    return f"caretaker/v1/{device.site}/devices/{device.id}/status"


def scans_topic(site: str, guard: str) -> str:
    """A guard's scans topic."""
    return f"caretaker/v1/{site}/guards/{guard}/scans"


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def own_clients(plan: Plan) -> set[str]:
    """Keys of the devices that need their own connection (a real Last Will) in this run."""
    if not plan.live:
        return set()
    return {d.key for d in plan.devices if sc.needs_own_client(plan.scenario.faults_for(d))}


def faulty_reading(device: Device, t: float, rng: random.Random,
                   faults: tuple[sc.Fault, ...], offset: float) -> Reading:
    """The device's reading at `t` with its active faults applied."""
    if not faults:
        return reading(device, t, rng)
    normal = None
    if sc.needs_normal(faults, offset):
        state = rng.getstate()  # the normal reading uses the same noise as the faulty one
        normal = reading(device, t, rng)
        rng.setstate(state)
    return reading(device, t, rng, sc.overrides(faults, offset, normal))


def telemetry_payload(values: Reading, ts_ms: int, shape: str) -> bytes:
    """A telemetry payload of one of the three shapes: `ts`, `array` or `flat`."""
    if shape == "flat":
        return dumps(values)
    if shape == "array":
        items = list(values.items())
        half = max(1, len(items) // 2)
        parts = [dict(items[:half]), dict(items[half:])] if len(items) > 1 else [values]
        return dumps([{"ts": ts_ms, "values": p} for p in parts])
    return dumps({"ts": ts_ms, "values": values})


def ticks(plan: Plan, device: Device) -> Iterator[float]:
    """The simulated times at which `device` takes a reading (each device has its own phase)."""
    phase = random.Random(f"{plan.seed}:{device.key}:phase").random() * plan.interval
    k = 0
    while True:
        t = plan.start + phase + k * plan.interval
        if plan.end is not None and t >= plan.end:
            return
        yield t
        k += 1


def device_events(plan: Plan, device: Device, *, own: bool = False) -> Iterator[Publish]:
    """The telemetry a device publishes, in time order, with its faults applied."""
    faults = plan.scenario.faults_for(device)
    rng = random.Random(f"{plan.seed}:{device.key}")
    topic = telemetry_topic(device)
    client = device.key if own else None
    for t in ticks(plan, device):
        offset = t - plan.start
        if faults and sc.silent(faults, offset):
            continue
        u = rng.random()
        shape = ("flat" if plan.receive_time and u < FLAT_SHARE
                 else "array" if u > 1 - ARRAY_SHARE else "ts")
        values = faulty_reading(device, t, rng, faults, offset)
        yield Publish(t, topic, telemetry_payload(values, round(t * 1000), shape), client=client)


def status_events(plan: Plan, own: set[str]) -> list[Event]:
    """Connections, `online` at the start, and Last-Will drops and returns of silent faults."""
    if not plan.live:
        return []
    events: list[Event] = []
    for d in plan.devices:
        mine = d.key in own
        if mine:
            events.append(Connect(plan.start, d.key, status_topic(d)))
        events.append(Publish(plan.start, status_topic(d), b"online", retain=True,
                              client=d.key if mine else None, kind="status"))
    later: list[Event] = []
    for d in plan.devices:
        for f in plan.scenario.faults_for(d):
            if not (f.kind == "silent" and f.lwt):
                continue
            begin = plan.start + f.start
            if plan.end is not None and begin >= plan.end:
                continue
            later.append(Drop(begin, d.key))
            if f.end is not None and (plan.end is None or plan.start + f.end < plan.end):
                back = plan.start + f.end
                later.append(Connect(back, d.key, status_topic(d)))
                later.append(Publish(back, status_topic(d), b"online", retain=True,
                                     client=d.key, kind="status"))
    later.sort(key=lambda e: e.time)  # stable: a return's Connect stays before its `online`
    return events + later


def _bad_payloads(plan: Plan, device: Device, index: int, fault: sc.Fault) -> Iterator[Publish]:
    k = 0
    while True:
        offset = fault.start + k * (fault.every or 0.0)
        t = plan.start + offset
        if (k > 0 and (fault.every is None or not fault.active(offset))) or (
                plan.end is not None and t >= plan.end):
            return
        rng = random.Random(f"{plan.seed}:bad:{device.key}:{index}:{k}")
        values = reading(device, t, rng)
        for kind in fault.payloads:
            topic, payload = sc.bad_payload(kind, device, round(t * 1000), values)
            yield Publish(t, topic, payload, kind="bad")
        k += 1


def bad_payload_events(plan: Plan) -> Iterator[Publish]:
    """The bad messages of the scenario's bad_payload faults, in time order (maybe endless)."""
    return heapq.merge(*(_bad_payloads(plan, d, i, f) for d in plan.devices
                         for i, f in enumerate(plan.scenario.faults_for(d))
                         if f.kind == "bad_payload"), key=lambda e: e.time)


def scan_events(plan: Plan) -> Iterator[Publish]:
    """Guards' scans for the plan's sites (simulators.guards), planned a day at a time.

    A day's plan holds the runs that start that day, whose scans may spill into the next
    day (or start a little early), so events are held back one day before they are emitted
    in time order. Scans after the end of the run are not published.
    """
    if not plan.sites:
        return iter(())
    from simulators.guards import plan_scans  # the patrol engineer's module

    def chunks() -> Iterator[Publish]:
        pending: list[tuple[float, int, Publish]] = []
        seq = 0
        begin = plan.start
        while plan.end is None or begin < plan.end:
            stop = begin + DAY if plan.end is None else min(begin + DAY, plan.end)
            for config in plan.sites:
                site = str(config["site"]["id"])
                planned = plan_scans(config, start=_dt(begin), end=_dt(stop), seed=plan.seed,
                                     rates=plan.guard_rates, gauge=gauge_reader(plan, site))
                for event in scans_as_events(site, planned):
                    if plan.end is None or event.time < plan.end:
                        heapq.heappush(pending, (event.time, seq, event))
                        seq += 1
            while pending and pending[0][0] < begin:
                yield heapq.heappop(pending)[2]
            begin = stop
        while pending:
            yield heapq.heappop(pending)[2]

    return chunks()


def gauge_reader(plan: Plan, site: str) -> Callable[[str, str, datetime], float | None]:
    """What a guard's gauge on a simulated device shows: its true value (with the device's
    faults, own noise) plus any `gauge_offset` fault; None for a device not simulated."""
    devices = {d.id: d for d in plan.devices if d.site == site}

    def read(device_id: str, metric: str, when: datetime) -> float | None:
        device = devices.get(device_id)
        if device is None:
            return None
        t = when.timestamp()
        faults = plan.scenario.faults_for(device)
        rng = random.Random(f"{plan.seed}:gauge:{device.key}:{t!r}")
        value = faulty_reading(device, t, rng, faults, t - plan.start).get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) + sc.gauge_offset(faults, t - plan.start, metric)

    return read


def verification_events(plan: Plan) -> list[Publish]:
    """Guards' scans answering the alarms the scenario sets off (simulators.responders)."""
    if not plan.sites or not plan.scenario.faults:
        return []
    from simulators.responders import responses

    out: list[Publish] = []
    for config in plan.sites:
        answers = responses(config, plan.scenario, start=_dt(plan.start),
                            end=None if plan.end is None else _dt(plan.end), seed=plan.seed,
                            rates=plan.guard_rates)
        out += scans_as_events(str(config["site"]["id"]), answers)
    return sorted(out, key=lambda e: e.time)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def scans_as_events(site: str, planned: Iterable[Any]) -> list[Publish]:
    """Publish events for planned scans: one message each, or one array per offline batch.

    A planned scan has `.time` (datetime), `.guard_id`, `.payload` (dict) and `.batch`
    (None, or an id shared by the scans a handheld stores offline and syncs together; the
    batch is published at the time of its last scan).
    """
    single: list[Publish] = []
    batches: dict[tuple[str, Any], list[Any]] = {}
    for p in planned:
        batch = getattr(p, "batch", None)
        if batch is None:
            single.append(Publish(p.time.timestamp(), scans_topic(site, p.guard_id),
                                  dumps(p.payload), kind="scan"))
        else:
            batches.setdefault((p.guard_id, batch), []).append(p)
    for (guard, _), items in batches.items():
        items.sort(key=lambda p: p.time)
        single.append(Publish(items[-1].time.timestamp(), scans_topic(site, guard),
                              dumps([p.payload for p in items]), kind="scan"))
    single.sort(key=lambda e: e.time)
    return single


def events(plan: Plan) -> Iterator[Event]:
    """Every event of the run, in time order (ties keep a fixed order: same plan, same stream)."""
    own = own_clients(plan)
    sources: list[Iterable[Event]] = [status_events(plan, own), bad_payload_events(plan),
                                      scan_events(plan), verification_events(plan)]
    sources += [device_events(plan, d, own=d.key in own) for d in plan.devices]
    return heapq.merge(*sources, key=lambda e: e.time)


def expected_telemetry(plan: Plan) -> int | None:
    """How many telemetry messages the plan publishes (None for an endless run)."""
    if plan.end is None:
        return None
    total = 0
    for d in plan.devices:
        faults = plan.scenario.faults_for(d)
        if any(f.kind == "silent" for f in faults):
            total += sum(1 for t in ticks(plan, d) if not sc.silent(faults, t - plan.start))
        else:
            phase = random.Random(f"{plan.seed}:{d.key}:phase").random() * plan.interval
            total += max(0, math.ceil((plan.end - plan.start - phase) / plan.interval))
    return total
