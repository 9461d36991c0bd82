"""The simulator's ground truth: what a run injected, written as JSON so a test or a reader can
work out the KPI numbers the stack must show (`caretaker simulate --truth FILE`).

Pure and deterministic like the plan it describes: the devices; each fault injected (device,
kind, metrics and values, start and end) with the alarms the site's rules will raise for it
(rule, severity, and whether it opens a ticket under the site's work-order policy); each
patrol run with every checkpoint visit made or skipped (scan time, timing early/on_time/late/
missed, out of order, repeated) and the faults the guards' plan injected. `expected_patrol`
and `expected_faults` turn a truth document into the KPI numbers for a period.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from caretaker.durations import seconds as parse_duration
from simulators import scenarios as sc
from simulators.fleet import Device
from simulators.stream import Plan

VERSION = 1
SEVERITY_RANK = {"warning": 0, "minor": 1, "major": 2, "critical": 3}
DEFAULT_OPEN_AT = "minor"
DEFAULT_REPEAT_WITHIN = 7 * 86400.0


def _iso(t: float | datetime | None) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.astimezone(UTC).isoformat()
    return datetime.fromtimestamp(t, UTC).isoformat()


def _compare(value: float, op: str, threshold: float) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
            "<=": value <= threshold, "==": value == threshold}.get(op, value != threshold)


def _imposed(fault: sc.Fault) -> dict[str, float]:
    """The values a fault drives its metrics to (the worst it reaches)."""
    out: dict[str, float] = {}
    if fault.kind == "step":
        for k, v in fault.set.items():
            if isinstance(v, bool | int | float):
                out[k] = float(v)
    elif fault.kind == "drift" and fault.metric and fault.to is not None:
        out[fault.metric] = float(fault.to)
    elif fault.kind == "flap" and fault.metric and fault.high is not None:
        out[fault.metric] = float(fault.high)
    return out


def _applies(rule: Mapping[str, Any], device: Device, types: Mapping[str, str]) -> bool:
    if rule.get("enabled", True) is False:
        return False
    if rule.get("device") is not None:
        return str(rule["device"]) == device.id
    if rule.get("device_type") is not None:
        return types.get(device.id) == str(rule["device_type"])
    return True


def _levels(rule: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(severity, threshold) of a rule, one per level (a rule without levels has one)."""
    if rule.get("levels"):
        return [(str(lv["severity"]), float(lv["threshold"])) for lv in rule["levels"]]
    if rule.get("threshold") is None or rule.get("severity") is None:
        return []
    return [(str(rule["severity"]), float(rule["threshold"]))]


def expected_alarms(fault: sc.Fault, device: Device, config: Mapping[str, Any], *,
                    interval: float, run_seconds: float) -> list[dict[str, Any]]:
    """The alarms the site's rules raise for one fault on one device: rule, severity, ticket.

    A threshold rule fires when the imposed value meets a level's threshold for longer than
    its hold time (plus one reading interval); a count rule when the fault lasts its count
    of readings. Silent faults raise the offline rules whose timeout they outlast. Values the
    fault changes only indirectly (a hot bearing behind a vibration) are not predicted.
    """
    types = {str(d["id"]): str(d.get("type") or "") for d in config.get("devices") or []}
    policy = config.get("work_order_policy") or {}
    open_at = SEVERITY_RANK[str(policy.get("open_at", DEFAULT_OPEN_AT))]
    duration = (fault.end if fault.end is not None else run_seconds) - fault.start
    values = _imposed(fault)
    found: dict[str, str] = {}
    for rule in config.get("rules") or []:
        if not _applies(rule, device, types):
            continue
        kind = rule.get("kind", "threshold")
        rule_id = str(rule["id"])
        if kind == "offline" and fault.kind == "silent":
            if duration > parse_duration(rule.get("timeout", "5m")):
                found[rule_id] = str(rule["severity"])
            continue
        metric = rule.get("metric")
        if kind not in ("threshold", "count") or metric not in values:
            continue
        need = (float(rule.get("count", 1)) * interval if kind == "count"
                else parse_duration(rule.get("for", 0)) + interval)
        if duration <= need:
            continue
        met = [sev for sev, threshold in _levels(rule)
               if _compare(values[metric], str(rule.get("op", ">")), threshold)]
        if met:
            found[rule_id] = max(met, key=SEVERITY_RANK.__getitem__)
    muted: set[str] = set()
    for rule in config.get("rules") or []:
        inhibits = rule.get("inhibits")
        if str(rule.get("id")) in found and isinstance(inhibits, Mapping):
            named = inhibits.get("rules")
            muted |= set(found) - {str(rule["id"])} if named == "*" else set(named or [])
    return [{"rule": r, "severity": s, "ticket": r not in muted and SEVERITY_RANK[s] >= open_at}
            for r, s in sorted(found.items())]


def _metrics(fault: sc.Fault) -> dict[str, float | None]:
    """The metrics a fault touches, with the value it drives each to (None: no value)."""
    out: dict[str, float | None] = dict(_imposed(fault))
    if fault.metric and fault.metric not in out:
        out[fault.metric] = None
    return out


def _faults(plan: Plan, config: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    run_seconds = (plan.end - plan.start) if plan.end is not None else 0.0
    out = []
    for device in plan.devices:
        for fault in plan.scenario.faults_for(device):
            begin = plan.start + fault.start
            if plan.end is not None and begin >= plan.end:
                continue
            end = plan.start + fault.end if fault.end is not None else plan.end
            if plan.end is not None and end is not None:
                end = min(end, plan.end)
            out.append({
                "site": device.site, "device": device.id, "kind": fault.kind,
                "metrics": _metrics(fault),
                "start": _iso(begin), "end": _iso(end),
                "alarms": expected_alarms(fault, device, config, interval=plan.interval,
                                          run_seconds=run_seconds) if config else []})
    out.sort(key=lambda f: (f["start"], f["site"], f["device"]))
    return out


def _timing(scan: datetime | None, start: datetime, end: datetime) -> str:
    if scan is None:
        return "missed"
    return "early" if scan < start else "late" if scan > end else "on_time"


def _patrol(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every run the guards' plan made, each visit made or skipped, and what was injected."""
    if not plan.sites or plan.end is None:
        return [], []
    from simulators.guards import plan_scans

    runs: list[dict[str, Any]] = []
    injected: list[dict[str, Any]] = []
    stop = datetime.fromtimestamp(plan.end, UTC)
    for config in plan.sites:
        site = str(config["site"]["id"])
        posts = {str(s["id"]): s.get("post") for s in config.get("schedules") or []}
        planned = plan_scans(config, start=datetime.fromtimestamp(plan.start, UTC), end=stop,
                             seed=plan.seed, rates=plan.guard_rates)
        repeated = {(s.schedule_id, s.run_start, s.checkpoint) for s in planned if s.repeat}
        for r in planned.runs:
            visits = []
            latest: datetime | None = None
            for step in r.steps:
                scan = step.scan_time if step.scan_time is None or step.scan_time < stop else None
                out_of_order = False
                if scan is not None and r.ordered:
                    out_of_order = latest is not None and scan < latest
                    latest = scan if not out_of_order else latest
                visits.append({
                    "seq": step.seq, "checkpoint": step.checkpoint, "equipment": step.equipment,
                    "window_start": _iso(step.window_start), "window_end": _iso(step.window_end),
                    "scan_time": _iso(scan), "timing": _timing(scan, step.window_start,
                                                               step.window_end),
                    "out_of_order": out_of_order,
                    "unpublished": step.scan_time is not None and scan is None,
                    "repeated": (r.schedule_id, r.start, step.checkpoint) in repeated})
            runs.append({"site": site, "schedule": r.schedule_id, "route": r.route_id,
                         "guard": r.guard_id, "post": posts.get(r.schedule_id),
                         "start": _iso(r.start), "offline": r.offline, "visits": visits})
        injected += [{"site": site, "kind": i.kind, "schedule": i.schedule_id,
                      "run_start": _iso(i.run_start), "guard": i.guard_id,
                      "checkpoint": i.checkpoint} for i in planned.injected]
    return runs, injected


def build(plan: Plan, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The truth document of a finite plan; `config` is the simulated site's configuration."""
    if plan.end is None:
        raise ValueError("--truth needs a run that ends (--duration or --backfill)")
    runs, injected = _patrol(plan)
    policy = (config or {}).get("work_order_policy") or {}
    return {
        "version": VERSION, "seed": plan.seed, "scenario": plan.scenario.name,
        "start": _iso(plan.start), "end": _iso(plan.end), "interval_seconds": plan.interval,
        "repeat_within_seconds": parse_duration(policy.get("repeat_within", "7d")),
        "devices": [{"site": d.site, "id": d.id, "type": d.type} for d in plan.devices],
        "faults": _faults(plan, config),
        "patrol": {"runs": runs, "injected": injected},
    }


def write(path: Path, doc: Mapping[str, Any]) -> None:
    """Write a truth document (UTF-8 JSON), replacing the file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


# ---- what the truth implies for a period ---------------------------------------------------

def _in(iso: str, start: datetime, end: datetime) -> bool:
    return start <= datetime.fromisoformat(iso) < end


def _add(acc: dict[str, dict[str, int]], key: str, visit: Mapping[str, Any]) -> None:
    c = acc.setdefault(key, {"expected": 0, "done": 0, "late": 0, "missed": 0,
                             "out_of_order": 0})
    c["expected"] += 1
    c["done"] += visit["timing"] in ("early", "on_time")
    c["late"] += visit["timing"] == "late"
    c["missed"] += visit["timing"] == "missed"
    c["out_of_order"] += bool(visit["out_of_order"])


def _walker(run: Mapping[str, Any]) -> str:
    """Whom the KPIs count a run for: a post's run for who walked it, `post:<post>` if nobody."""
    if run["post"] is None:
        return str(run["guard"])
    walked = any(v["scan_time"] is not None for v in run["visits"])
    return str(run["guard"]) if walked else f"post:{run['post']}"


def expected_patrol(doc: Mapping[str, Any], site: str, start: datetime, end: datetime
                    ) -> dict[str, Any]:
    """Patrol and inspection completion the truth implies for runs starting in [start, end).

    Patrol: checkpoint visits (not equipment) done early or on time ÷ expected, per route
    and guard, late and missed apart. Inspection: rounds (runs with equipment visits) whose
    every equipment visit was scanned ÷ rounds, per route.
    """
    by_route: dict[str, dict[str, int]] = {}
    by_guard: dict[str, dict[str, int]] = {}
    rounds: dict[str, dict[str, int]] = {}
    for run in doc["patrol"]["runs"]:
        if run["site"] != site or not _in(run["start"], start, end):
            continue
        equipment = [v for v in run["visits"] if v["equipment"]]
        for v in run["visits"]:
            if not v["equipment"]:
                _add(by_route, run["route"], v)
                _add(by_guard, _walker(run), v)
        if equipment:
            c = rounds.setdefault(run["route"], {"due": 0, "done": 0, "late": 0})
            c["due"] += 1
            done = all(v["timing"] != "missed" for v in equipment)
            c["done"] += done
            c["late"] += done and any(v["timing"] == "late" for v in equipment)
    return {"by_route": by_route, "by_guard": by_guard, "inspection_by_route": rounds}


def expected_faults(doc: Mapping[str, Any], site: str) -> dict[str, Any]:
    """Faults (alarms that open or join a ticket) and repeat faults the truth implies.

    A fault repeats an earlier one of the same device and rule within the repeat period.
    """
    seen: dict[tuple[str, str], list[datetime]] = {}
    for f in doc["faults"]:
        if f["site"] != site:
            continue
        for alarm in f["alarms"]:
            if alarm["ticket"]:
                seen.setdefault((f["device"], alarm["rule"]), []).append(
                    datetime.fromisoformat(f["start"]))
    within = timedelta(seconds=float(doc.get("repeat_within_seconds", DEFAULT_REPEAT_WITHIN)))
    by_device: dict[str, dict[str, int]] = {}
    for (device, _), times in sorted(seen.items()):
        times.sort()
        c = by_device.setdefault(device, {"faults": 0, "repeats": 0})
        c["faults"] += len(times)
        c["repeats"] += sum(1 for a, b in zip(times, times[1:], strict=False) if b - a <= within)
    return {"faults": sum(c["faults"] for c in by_device.values()),
            "repeats": sum(c["repeats"] for c in by_device.values()),
            "by_device": by_device, "tickets": sorted(f"{d}/{r}" for d, r in seen)}


def read(path: Path) -> dict[str, Any]:
    """A truth document from its file."""
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def sites_of(doc: Mapping[str, Any]) -> Iterable[str]:
    """The sites a truth document covers."""
    return sorted({d["site"] for d in doc["devices"]})
