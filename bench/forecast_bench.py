"""Early-warning accuracy: days of warning on 10-day drifts, false warnings on a stable month.

Pure and seeded (no servers): readings come from the simulator's device models
(simulators.devices, the same noise and daily cycles as `caretaker simulate`) every 60 s, are
bucketed hourly as the job's `hourly_values` does, and the forecast and its decision
(rules.forecast) run once an hour as the job does, with the example site's rules and the
default forecast settings (horizon 7d, window 5d, min_history 2d, min_confidence 0.99).

1. Drifts: a device's metric drifts linearly over 10 days (the scenario's `drift` with `by`)
   after 5 stable days; the true crossing is the first reading that meets the rule's level.
   Printed: when the first warning came (days before the crossing), how far its expected
   crossing was off, and how often the warning was withdrawn before the crossing.
2. Stable month: every threshold rule of the example site on every device it covers,
   30 days of stable signals after a 5-day lead-in; every warning is a false one.

    python bench/forecast_bench.py [--seeds 5] [--month-seeds 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.forecast import Forecast, Hourly, decide, forecast  # noqa: E402
from rules.forecast_config import ForecastSpec  # noqa: E402
from rules.model import ThresholdRule, compare, parse_rule  # noqa: E402
from simulators import scenarios as sc  # noqa: E402
from simulators.devices import reading  # noqa: E402
from simulators.fleet import Device, fleet_from_config, load_config  # noqa: E402
from simulators.stream import faulty_reading  # noqa: E402

INTERVAL = 60.0
DAY = 86400.0
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; any date will do
SPEC = ForecastSpec()


@dataclass(frozen=True)
class Case:
    """A drift to detect: device, metric, change over 10 days, and the rule that watches it."""

    device: str
    rule: str
    metric: str
    by: float
    level: str | None = None


CASES = (
    Case("tank-fire", "fire-tank-level-low", "level", -15.0),
    Case("tank-roof-a", "tank-level-low", "level", -36.0),
    Case("pump-1", "pump-vibration", "vibration", 2.0),
    Case("pump-2", "pump-outlet-pressure-low", "outlet_pressure", -0.17),
    Case("meter-main", "power-factor-low", "power_factor", -0.065),
    Case("chiller-1", "chiller-supply-temp-high", "supply_temp", 2.2),
)


def _hours(device: Device, metrics: set[str], *, days: float, seed: int,
           faults: tuple[sc.Fault, ...] = ()) -> tuple[dict[str, list[Hourly]],
                                                       dict[str, list[tuple[float, float]]]]:
    """Hourly buckets (and the raw readings) of some metrics of a device over `days`."""
    start = START.timestamp()
    rng = random.Random(f"{seed}:{device.key}")
    buckets: dict[tuple[str, int], list[float]] = defaultdict(list)
    raw: dict[str, list[tuple[float, float]]] = defaultdict(list)
    phase = random.Random(f"{seed}:{device.key}:phase").random() * INTERVAL
    n = int(days * DAY / INTERVAL)
    for k in range(n):
        t = start + phase + k * INTERVAL
        values = (faulty_reading(device, t, rng, faults, t - start) if faults
                  else reading(device, t, rng))
        for m in metrics:
            v = values.get(m)
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            buckets[(m, int(t // 3600))].append(float(v))
            raw[m].append((t, float(v)))
    out: dict[str, list[Hourly]] = defaultdict(list)
    for (m, h), vs in sorted(buckets.items(), key=lambda kv: kv[0][1]):
        out[m].append(Hourly(datetime.fromtimestamp(h * 3600, UTC), sum(vs) / len(vs), min(vs),
                             max(vs), len(vs)))
    return out, raw


def _threshold(rule: ThresholdRule, level: str | None) -> tuple[str, float]:
    ladder = rule.ladder()
    rung = next((r for r in ladder if r.severity == level), ladder[0])
    return rung.severity, rung.threshold


@dataclass
class Run:
    """What the hourly job would have done on one series."""

    opens: list[tuple[datetime, Forecast]]
    withdrawals: list[datetime]
    updates: list[datetime]
    max_confidence: float


def replay(hours: list[Hourly], rule: ThresholdRule, threshold: float, *, begin: datetime,
           end: datetime) -> Run:
    """Run the forecast and decision once an hour from `begin` to `end` (no alarm active)."""
    state, noted, noted_at = "idle", None, None
    opens: list[tuple[datetime, Forecast]] = []
    withdrawals: list[datetime] = []
    updates: list[datetime] = []
    top = 0.0
    times = [h.at for h in hours]
    lo = 0
    now = begin
    while now < end:
        while lo < len(hours) and times[lo] < now - SPEC.window:
            lo += 1
        hi = lo
        while hi < len(hours) and times[hi] < now:
            hi += 1
        estimate = forecast(hours[lo:hi], op=rule.op, threshold=threshold, now=now,
                            horizon=SPEC.horizon, min_history=SPEC.min_history)
        if estimate is not None:
            top = max(top, estimate.confidence)
        step = decide(state, estimate, now=now, alarm_active=False, ticket_live=True,
                      noted=noted, noted_at=noted_at, min_confidence=SPEC.min_confidence,
                      withdraw_below=SPEC.withdraw_below)
        if step.action == "open" and estimate is not None:
            opens.append((now, estimate))
            noted, noted_at = estimate.expected, now
        elif step.action == "update" and estimate is not None:
            noted, noted_at = estimate.expected, now
            updates.append(now)
        elif step.action == "withdraw":
            withdrawals.append(now)
        state = step.state
        now += timedelta(hours=1)
    return Run(opens, withdrawals, updates, top)


def _rules(config: dict[str, Any]) -> dict[str, ThresholdRule]:
    out = {}
    for spec in config.get("rules") or []:
        rule = parse_rule(str(config["site"]["id"]), spec)
        if isinstance(rule, ThresholdRule) and rule.op in (">", ">=", "<", "<="):
            out[rule.id] = rule
    return out


def drifts(config: dict[str, Any], devices: dict[str, Device], rules: dict[str, ThresholdRule],
           seeds: int) -> list[dict[str, Any]]:
    """Each case under each seed: warning lead, expected-crossing error, withdrawals."""
    results = []
    for case in CASES:
        rule = rules[case.rule]
        level, threshold = _threshold(rule, case.level)
        fault = sc.parse_fault({"kind": "drift", "devices": [case.device], "metric": case.metric,
                                "by": case.by, "start": "5d", "ramp": "10d"})
        for seed in range(seeds):
            hours, raw = _hours(devices[case.device], {case.metric}, days=16.0, seed=seed,
                                faults=(fault,))
            crossed = next((t for t, v in raw[case.metric] if compare(v, rule.op, threshold)),
                           None)
            truth = None if crossed is None else datetime.fromtimestamp(crossed, UTC)
            end = truth or START + timedelta(days=16)
            run = replay(hours[case.metric], rule, threshold, begin=START + timedelta(days=2),
                         end=end)
            first = run.opens[0] if run.opens else None
            results.append({
                "case": f"{case.device} {case.metric} {case.by:+g}/10d ({rule.op} {threshold:g})",
                "seed": seed,
                "crossing_day": None if truth is None else (truth - START).total_seconds() / DAY
                - 5.0,
                "lead_days": None if first is None or truth is None
                else (truth - first[0]).total_seconds() / DAY,
                "error_h": None if first is None or truth is None or first[1].expected is None
                else (first[1].expected - truth).total_seconds() / 3600,
                "confidence": None if first is None else first[1].confidence,
                "withdrawn": len([w for w in run.withdrawals if truth is None or w < truth]),
                "notes": len(run.updates),
                "warned_before_drift": any(o[0] < START + timedelta(days=5) for o in run.opens),
            })
    return results


def stable(config: dict[str, Any], devices: dict[str, Device], rules: dict[str, ThresholdRule],
           seed: int) -> tuple[int, int, int, tuple[float, str], list[str]]:
    """A month of stable signals: series, hourly decisions, false warnings, max confidence."""
    series = decisions = false = 0
    top = (0.0, "")
    where: list[str] = []
    types = {str(d["id"]): str(d.get("type") or "") for d in config.get("devices") or []}
    for dev_id, device in devices.items():
        mine = [r for r in rules.values() if r.applies_to(dev_id, types.get(dev_id))]
        if not mine:
            continue
        hours, _ = _hours(device, {r.metric for r in mine}, days=35.0, seed=1000 + seed)
        for rule in mine:
            _, threshold = _threshold(rule, None)
            run = replay(hours[rule.metric], rule, threshold, begin=START + timedelta(days=5),
                         end=START + timedelta(days=35))
            series += 1
            decisions += 30 * 24
            false += len(run.opens)
            top = max(top, (run.max_confidence, f"{dev_id}/{rule.id}"))
            where += [f"{dev_id}/{rule.id} at {o[0]:%m-%d %H:%M} ({o[1].confidence:.3f})"
                      for o in run.opens]
    return series, decisions, false, top, where


def per_estimate_ms(config: dict[str, Any], devices: dict[str, Device],
                    rules: dict[str, ThresholdRule], repeat: int = 300) -> float:
    """Milliseconds of one estimate (a window of 120 hourly values), the pure part only."""
    rule = rules["pump-vibration"]
    hours, _ = _hours(devices["pump-1"], {"vibration"}, days=5.0, seed=0)
    now = START + timedelta(days=5)
    began = time.perf_counter()
    for _ in range(repeat):
        forecast(hours["vibration"], op=rule.op, threshold=4.5, now=now, horizon=SPEC.horizon)
    return (time.perf_counter() - began) / repeat * 1000


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per drift case")
    parser.add_argument("--month-seeds", type=int, default=2, help="stable months to simulate")
    args = parser.parse_args(argv)
    config = load_config(None)
    devices = {d.id: d for d in fleet_from_config(config, known_types=set(
        str(t["id"]) for t in config["device_types"]))}
    rules = _rules(config)
    began = time.perf_counter()
    rows = drifts(config, devices, rules, args.seeds)
    print(f"Drifts over 10 days after 5 stable days, {args.seeds} seeds each"
          f" (horizon {SPEC.horizon.days} d, window {SPEC.window.days} d,"
          f" min_confidence {SPEC.min_confidence}):")
    print(f"{'case':<52} {'seed':>4} {'crosses d':>9} {'warned d ahead':>14}"
          f" {'expected err h':>14} {'conf':>6} {'withdrawn':>9} {'notes':>5}")
    for r in rows:
        print(f"{r['case']:<52} {r['seed']:>4} {_fmt(r['crossing_day'], '.2f'):>9}"
              f" {_fmt(r['lead_days'], '.2f'):>14} {_fmt(r['error_h'], '+.0f'):>14}"
              f" {_fmt(r['confidence'], '.3f'):>6} {r['withdrawn']:>9} {r['notes']:>5}")
    leads = [r["lead_days"] for r in rows if r["lead_days"] is not None]
    missed = sum(1 for r in rows if r["lead_days"] is None)
    early = sum(1 for r in rows if r["warned_before_drift"])
    if leads:
        leads.sort()
        print(f"lead: min {leads[0]:.2f} d, median {leads[len(leads) // 2]:.2f} d,"
              f" max {leads[-1]:.2f} d; no warning before the crossing: {missed} of {len(rows)};"
              f" warned before the drift began: {early}")
    total_series = total_decisions = total_false = 0
    top = (0.0, "")
    for seed in range(args.month_seeds):
        series, decisions, false, best, where = stable(config, devices, rules, seed)
        total_series += series
        total_decisions += decisions
        total_false += false
        top = max(top, best)
        for w in where:
            print(f"  false warning (month seed {seed}): {w}")
    print(f"Stable month x {args.month_seeds}: {total_series} device/rule series,"
          f" {total_decisions} hourly decisions, false warnings {total_false},"
          f" highest confidence seen {top[0]:.4f} ({top[1]})")
    print(f"one estimate (120 hourly values, fit + crossings + confidence):"
          f" {per_estimate_ms(config, devices, rules):.1f} ms")
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
