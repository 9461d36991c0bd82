"""Simulated guards: walk a site's routes per its schedules and plan the scans they make.

`plan_scans(site_config, start=, end=, seed=, rates=)` is pure and deterministic: the same
arguments give the same plan. It covers the runs whose planned start lies in [start, end)
(their later scans included, so a run is never split between two calls), using the patrol
engine's own schedule expansion and route windows. It injects faults at the given rates and
says what it injected: `plan.injected` lists them, and `plan.runs` has every run with each
step's window and the time of the scan that counts for it (None: missed), from which the
exact gaps the patrol engine must raise can be computed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rules.patrol.model import Route, Schedule, route_from_dict, schedule_from_dict
from rules.patrol.schedule import occurrences

MS = timedelta(milliseconds=1)
# What a guard's gauge shows: gauge(device_id, metric, time) → value, None when unknown.
Gauge = Callable[[str, str, datetime], float | None]


@dataclass(frozen=True)
class Rates:
    """Probabilities of injected faults (per step, except where noted per run)."""

    late: float = 0.05          # a step scanned 1–5 minutes after its window closes
    missed: float = 0.03        # a step not scanned at all
    out_of_order: float = 0.03  # per ordered run: two neighbouring steps walked swapped
    repeated: float = 0.03      # a step's tag scanned again 20–90 s later (suspicious)
    offline_batch: float = 0.05  # per run: the handheld is offline, the run syncs as one array
    missed_run: float = 0.0     # per run: nobody walks it
    abnormal: float = 0.0       # per equipment step: result "abnormal" (becomes a work order)

    @classmethod
    def of(cls, rates: Rates | dict[str, float] | None) -> Rates:
        """Rates from a Rates, a dict of some of the fields, or None (the defaults)."""
        if rates is None:
            return cls()
        if isinstance(rates, Rates):
            return rates
        return cls(**rates)


NONE = Rates(late=0, missed=0, out_of_order=0, repeated=0, offline_batch=0)


@dataclass(frozen=True)
class PlannedScan:
    """One scan a guard's handheld publishes: when, by whom, the MQTT payload.

    `batch` is None for a scan published at once, or an id shared by the scans a handheld
    stored offline and syncs together (published with the batch's last scan).
    """

    time: datetime
    guard_id: str
    payload: dict[str, Any]
    batch: str | None = None
    schedule_id: str = ""
    run_start: datetime | None = None
    checkpoint: str = ""
    repeat: bool = False

    @property
    def offline_batch(self) -> bool:
        """True when this scan is synced later as part of an offline batch."""
        return self.batch is not None


@dataclass(frozen=True)
class Injection:
    """A fault the plan injected: missed, late, out_of_order, repeated, offline_batch, ..."""

    kind: str
    schedule_id: str
    run_start: datetime
    guard_id: str
    checkpoint: str | None = None


@dataclass
class PlannedStep:
    """A step of a planned run: its window and the time of the scan that counts (None: missed)."""

    seq: int
    checkpoint: str
    equipment: bool
    window_start: datetime
    window_end: datetime
    scan_time: datetime | None = None


@dataclass
class PlannedRun:
    """A run the plan walks (or skips): schedule, guard, start, steps, and how it syncs."""

    schedule_id: str
    route_id: str
    guard_id: str
    start: datetime
    start_deadline: datetime
    ordered: bool
    lone_worker: timedelta | None
    steps: list[PlannedStep] = field(default_factory=list)
    offline: bool = False
    synced_at: datetime | None = None   # when an offline run's batch is published


class Plan(list[PlannedScan]):
    """The planned scans in time order, with `.runs` and `.injected` describing them."""

    def __init__(self, scans: list[PlannedScan], runs: list[PlannedRun],
                 injected: list[Injection]) -> None:
        super().__init__(scans)
        self.runs = runs
        self.injected = injected


def _walker(config: dict[str, Any], sched: Schedule) -> str | None:
    if sched.guard:
        return sched.guard
    for g in config.get("guards") or []:
        if g.get("post") == sched.post and g.get("active", True):
            return str(g["id"])
    return None


def _readings(checklist: list[dict[str, Any]]) -> dict[str, Any]:
    """Answers inside every range of a checklist (a healthy piece of equipment)."""
    out: dict[str, Any] = {}
    for item in checklist:
        key = item.get("reading")
        if not key:
            continue
        if "expect" in item:
            out[key] = item["expect"]
        elif "min" in item and "max" in item:
            out[key] = round((float(item["min"]) + float(item["max"])) / 2, 3)
        elif "min" in item:
            out[key] = float(item["min"]) * 1.1 + 1
        elif "max" in item:
            out[key] = float(item["max"]) * 0.8
    return out


def _gauge_readings(site_config: dict[str, Any], checkpoint: dict[str, Any], when: datetime,
                    gauge: Gauge | None) -> dict[str, Any]:
    """The answers read off gauges the site's `calibration:` links to a sensor, at `when`.

    A gauge shows what the device's sensor measures (plus any gauge fault), read to two
    decimals below 10 and one above, as a technician reads a dial.
    """
    if gauge is None:
        return {}
    out: dict[str, Any] = {}
    for link in site_config.get("calibration") or []:
        if not isinstance(link, dict) or link.get("checkpoint") != checkpoint.get("id"):
            continue
        device = link.get("device") or checkpoint.get("device")
        if not device or not link.get("reading") or not link.get("metric"):
            continue
        value = gauge(str(device), str(link["metric"]), when)
        if value is not None:
            out[str(link["reading"])] = round(value, 2 if abs(value) < 10 else 1)
    return out


def _on_time(rng: random.Random, route: Route, start: datetime) -> list[datetime]:
    """Scan times inside each step's window (ordered routes: in order)."""
    times: list[datetime] = []
    for step, (due, ws, we) in zip(route.steps, route.windows(), strict=True):
        if route.ordered:
            t = start + due + step.tolerance * rng.uniform(-0.5, 0.5)
            if times:
                t = max(t, times[-1] + timedelta(seconds=20))
            t = min(t, start + we)
        else:
            t = start + max(ws, timedelta(0)) + (we - max(ws, timedelta(0))) * rng.uniform(
                0.1, 0.8)
        times.append(t.replace(microsecond=(t.microsecond // 1000) * 1000))
    return times


def plan_scans(site_config: dict[str, Any], *, start: datetime, end: datetime, seed: int,
               rates: Rates | dict[str, float] | None = None, gauge: Gauge | None = None
               ) -> Plan:
    """The scans the site's guards make for the runs planned to start in [start, end).

    `gauge` gives what the gauges linked in the site's `calibration:` section show at a scan
    (simulators/stream.py reads the simulated devices); without it, every answer is in range.
    """
    r = Rates.of(rates)
    site = str(site_config["site"]["id"])
    tz = str(site_config["site"].get("timezone") or "UTC")
    routes = {str(x["id"]): route_from_dict(x) for x in site_config.get("routes") or []}
    kinds = {str(c["id"]): c.get("kind", "patrol") for c in site_config.get("checkpoints") or []}
    cps = {str(c["id"]): c for c in site_config.get("checkpoints") or []}
    scans: list[PlannedScan] = []
    runs: list[PlannedRun] = []
    injected: list[Injection] = []
    for raw in site_config.get("schedules") or []:
        sched = schedule_from_dict(raw)
        route = routes.get(sched.route)
        guard = _walker(site_config, sched)
        if route is None or guard is None:
            continue
        windows = route.windows()
        for run_start in occurrences(sched, tz, start, end):
            rng = random.Random(f"{seed}:{site}:{sched.id}:{run_start.isoformat()}")
            tol = (sched.start_tolerance if sched.start_tolerance is not None
                   else route.default_start_tolerance())
            run = PlannedRun(sched.id, route.id, guard, run_start, run_start + tol,
                             route.ordered, route.lone_worker)
            runs.append(run)
            for i, (step, (_, ws, we)) in enumerate(zip(route.steps, windows, strict=True)):
                run.steps.append(PlannedStep(i + 1, step.checkpoint,
                                             kinds.get(step.checkpoint) == "equipment",
                                             run_start + ws, run_start + we))

            def note(kind: str, checkpoint: str | None = None, *, _run: PlannedRun = run
                     ) -> None:
                injected.append(Injection(kind, _run.schedule_id, _run.start, _run.guard_id,
                                          checkpoint))

            if rng.random() < r.missed_run:
                note("missed_run")
                continue
            times: list[datetime | None] = list(_on_time(rng, route, run_start))
            if route.ordered and len(times) > 1 and rng.random() < r.out_of_order:
                k = rng.randrange(len(times) - 1)
                times[k], times[k + 1] = times[k + 1], times[k]
                note("out_of_order", route.steps[k].checkpoint)
            for k, step in enumerate(route.steps):
                if rng.random() < r.missed:
                    times[k] = None
                    note("missed", step.checkpoint)
                elif rng.random() < r.late:
                    late = run.steps[k].window_end + timedelta(seconds=rng.randint(60, 300))
                    times[k] = late
                    note("late", step.checkpoint)
            offline = rng.random() < r.offline_batch and any(t is not None for t in times)
            batch = f"{sched.id}@{run_start.isoformat()}" if offline else None
            if offline:
                run.offline = True
                note("offline_batch")
            for k, step in enumerate(route.steps):
                t = times[k]
                if t is None:
                    continue
                run.steps[k].scan_time = t
                cp = cps.get(step.checkpoint, {})
                payload: dict[str, Any] = {
                    "scan_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "tag": str(cp.get("tag", step.checkpoint)),
                    "ts": int(t.timestamp() * 1000), "result": "ok"}
                if cp.get("kind") == "equipment":
                    payload["readings"] = {**_readings(cp.get("checklist") or []),
                                           **_gauge_readings(site_config, cp, t, gauge)}
                    if rng.random() < r.abnormal:
                        payload["result"] = "abnormal"
                        payload["note"] = "abnormal noise and vibration 异响"
                        note("abnormal", step.checkpoint)
                scans.append(PlannedScan(t, guard, payload, batch, sched.id, run_start,
                                         step.checkpoint))
                if rng.random() < r.repeated:
                    again = t + timedelta(seconds=rng.randint(20, 90))
                    scans.append(PlannedScan(
                        again, guard,
                        {**payload, "scan_id": str(uuid.UUID(int=rng.getrandbits(128),
                                                             version=4)),
                         "ts": int(again.timestamp() * 1000)},
                        batch, sched.id, run_start, step.checkpoint, repeat=True))
                    note("repeated", step.checkpoint)
            if offline:
                run.synced_at = max(s.time for s in scans if s.batch == batch)
    scans.sort(key=lambda s: (s.time, s.guard_id, s.payload["scan_id"]))
    runs.sort(key=lambda x: (x.start, x.schedule_id))
    return Plan(scans, runs, injected)
