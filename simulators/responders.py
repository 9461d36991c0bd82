"""Simulated guards answer alarm verifications: the nearest on-duty guard walks and scans.

Pure and deterministic, like the guards' rounds (simulators/guards.py). For each step fault
of the scenario that trips a rule named in the site's `verification:` section (a forced
door, water on a floor), it works out who the server will send — the same choice
(rules/verification.py) over the same planned scans, the day before the alarm included (a
demo publishes those as its history; without them the server may send another guard, whose
phone page then shows the visit) — and plans that guard's scan at the
checkpoint after the walk (`WALK_SPEED` m/s over the distance, `UNKNOWN_WALK` when the
distance is unknown). The scan's result is `abnormal` with a note: the guard confirms what
they found (the server records it and opens a work order).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rules.model import RuleError, compare, parse_rule
from rules.verification import Guard, SiteMap, choose
from rules.verification_config import VerificationConfigError, parse_spec
from simulators.guards import plan_scans
from simulators.scenarios import Scenario

WALK_SPEED = 1.0                        # metres a second, walking briskly with a handheld
UNKNOWN_WALK = timedelta(minutes=4)     # when the server cannot tell how far the guard is
LOOK = timedelta(seconds=30)            # a look around before scanning
NOTE = "到场核实：确有异常 confirmed on site"


@dataclass(frozen=True)
class Response:
    """A guard's verification scan (the shape simulators.stream.scans_as_events takes)."""

    time: datetime
    guard_id: str
    payload: dict[str, Any]
    batch: None = None


def _tripped(config: dict[str, Any], device: str, values: dict[str, Any]
             ) -> list[tuple[str, timedelta]]:
    """The rules (id, hold) a device's forced values trip."""
    site = str(config["site"]["id"])
    types = {str(d["id"]): d.get("type") for d in config.get("devices") or []}
    out = []
    for spec in config.get("rules") or []:
        try:
            rule = parse_rule(site, spec)
        except RuleError:
            continue
        value = values.get(rule.metric) if rule.metric else None
        if (rule.kind != "threshold" or not isinstance(value, int | float)
                or not rule.applies_to(device, types.get(device))):
            continue
        rung = rule.ladder()[0]
        if compare(float(value), rule.op, rung.threshold):
            out.append((rule.id, timedelta(seconds=rung.hold)))
    return out


def responses(config: dict[str, Any], scenario: Scenario, *, start: datetime,
              end: datetime | None, seed: int, rates: Any = None) -> list[Response]:
    """The verification scans the site's guards make for the scenario's alarms."""
    try:
        spec = parse_spec(config.get("verification"))
    except VerificationConfigError:
        return []
    if not spec.rules:
        return []
    checkpoints = {str(c["id"]): c for c in config.get("checkpoints") or []}
    site_map = SiteMap(distances=spec.distances,
                       zone_of={k: c.get("zone") for k, c in checkpoints.items()},
                       adjacent_zones=spec.adjacent_zones, zone_step=spec.zone_step)
    out: list[Response] = []
    for fault in scenario.faults:
        if fault.kind != "step":
            continue
        for device in (str(d["id"]) for d in config.get("devices") or []):
            if device not in fault.devices:
                continue
            for rule_id, hold in _tripped(config, device, dict(fault.set)):
                entry = spec.rule(rule_id)
                if entry is None or not entry.checkpoint:
                    continue
                alarm = start + timedelta(seconds=fault.start) + hold
                if end is not None and alarm >= end:
                    continue
                sent = _nearest(config, spec.on_duty, entry.checkpoint, site_map, alarm,
                                seed=seed, rates=rates)
                if sent is None:
                    continue
                walk = (timedelta(seconds=sent.distance / WALK_SPEED)
                        if sent.distance is not None else UNKNOWN_WALK)
                at = alarm + walk + LOOK
                at = at.replace(microsecond=(at.microsecond // 1000) * 1000)
                rng_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}:{device}:{rule_id}:{alarm}")
                out.append(Response(at, sent.guard.id, {
                    "scan_id": str(rng_id),
                    "tag": str(checkpoints[entry.checkpoint].get("tag", entry.checkpoint)),
                    "ts": int(at.timestamp() * 1000), "result": "abnormal", "note": NOTE}))
    return sorted(out, key=lambda r: (r.time, r.guard_id))


def _nearest(config: dict[str, Any], on_duty: timedelta, checkpoint: str, site_map: SiteMap,
             alarm: datetime, *, seed: int, rates: Any) -> Any:
    """The server's choice at `alarm`, from the rounds the simulated guards walk."""
    plan = plan_scans(config, start=alarm - timedelta(days=1), end=alarm + timedelta(hours=1),
                      seed=seed, rates=rates)
    cp_of = {str(c.get("tag")): str(c["id"]) for c in config.get("checkpoints") or []}
    last: dict[str, tuple[datetime, str]] = {}
    # the rounds of the day before count too: a demo publishes them as its history
    for s in plan:
        if s.time <= alarm and s.payload["tag"] in cp_of:
            last[s.guard_id] = (s.time, cp_of[s.payload["tag"]])
    walking = {r.guard_id for r in plan.runs
               if r.start <= alarm <= max((st.window_end for st in r.steps), default=r.start)}
    guards = [Guard(g, last[g][1] if g in last else None, last[g][0] if g in last else None)
              for g in sorted(set(last) | walking)
              if g in walking or alarm - last[g][0] <= on_duty]
    return choose(guards, checkpoint, site_map)
