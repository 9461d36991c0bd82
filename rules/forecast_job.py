"""Early warning, the I/O part: hourly history in, one preventive work order per condition out.

For each forecast rule (site file `forecast:`) and each device it covers, the job reads the
hourly values of the window through `hourly_values`, estimates the crossing (rules.forecast),
decides (rules.forecast.decide) and acts: opens one preventive work order that says when the
crossing is expected and how sure, notes on it when the estimate moves, cancels it with the
reason when no crossing is foreseen any more, and says nothing while the real alarm is active.
The latest estimate and what was said are rows of `forecasts`: a restart forgets nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from caretaker.paging import Where, fetch_page
from rules.engine import TRANSIENT, for_device
from rules.forecast import ORDERED, Forecast, Hourly, Step, decide, forecast
from rules.forecast_config import ForecastSpec, parse_spec
from rules.model import Rule, ThresholdRule, rule_from_row
from tickets import work_orders

log = logging.getLogger(__name__)

BATCH = 200  # estimates recomputed per pass at most, so that a pass stays short
RETRY = timedelta(minutes=2)  # a condition without an estimate yet is looked at this often
ACTOR = "forecast"


def hourly_values(conn: psycopg.Connection[Any], site_id: str, device_id: str, metric: str,
                  since: datetime, until: datetime) -> list[Hourly]:
    """Hourly mean, minimum, maximum and count of a metric's readings in [since, until).

    The one reader of history for forecasts: the 1-hour rollups through telemetry_rollup
    (migration 020), exact also for hours not rolled up yet (it reads their raw points).
    """
    rows = conn.execute(
        "SELECT time AS at, avg AS mean, min AS low, max AS high, count AS n"
        " FROM telemetry_rollup(%s, %s, %s, %s, %s, interval '1 hour', '1h')"
        " WHERE avg IS NOT NULL AND count > 0 ORDER BY time",
        (site_id, device_id, metric, since, until)).fetchall()
    return [Hourly(r["at"], float(r["mean"]), float(r["low"]), float(r["high"]), int(r["n"]))
            for r in rows]


@dataclass(frozen=True)
class Target:
    """One device and condition to forecast: the rule (the device's overrides applied), level."""

    site_id: str
    device_id: str
    rule: ThresholdRule
    level: str
    threshold: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.site_id, self.device_id, self.rule.id)


def targets(conn: psycopg.Connection[Any], site_id: str, spec: ForecastSpec) -> list[Target]:
    """The device/rule pairs a site's forecast section covers."""
    rules = [rule_from_row(r) for r in conn.execute(
        "SELECT * FROM rules WHERE site_id = %s AND enabled AND kind = 'threshold'"
        " ORDER BY id", (site_id,))]
    watched = spec.watched([r.id for r in rules])
    if not watched:
        return []
    devices = conn.execute(
        "SELECT id, type_id, overrides FROM devices WHERE site_id = %s AND status <> 'retired'"
        " ORDER BY id", (site_id,)).fetchall()
    out = []
    for base in rules:
        if base.id not in watched:
            continue
        for dev in devices:
            if not base.applies_to(dev["id"], dev["type_id"]):
                continue
            rule = for_device(base, dict(dev), dev["id"])
            target = _target(site_id, dev["id"], rule, watched[base.id])
            if target is not None:
                out.append(target)
    return out


def _target(site_id: str, device_id: str, rule: Rule, level: str | None) -> Target | None:
    if not isinstance(rule, ThresholdRule) or rule.op not in ORDERED:
        return None
    ladder = rule.ladder()
    rung = next((r for r in ladder if r.severity == level), ladder[0])
    return Target(site_id, device_id, rule, rung.severity, rung.threshold)


def run(conn: psycopg.Connection[Any], now: datetime) -> int:
    """One pass: recompute the estimates that are due (at most BATCH); how many were."""
    sites = conn.execute("SELECT f.site_id, f.spec, s.timezone FROM forecast_settings f"
                         " JOIN sites s ON s.id = f.site_id ORDER BY f.site_id").fetchall()
    due: list[tuple[datetime, Target, ForecastSpec, str, dict[str, Any] | None]] = []
    for site in sites:
        spec = parse_spec(site["spec"])
        rows = {(r["site_id"], r["device_id"], r["rule_id"]): dict(r) for r in conn.execute(
            "SELECT * FROM forecasts WHERE site_id = %s", (site["site_id"],))}
        wanted = targets(conn, site["site_id"], spec)
        for target in wanted:
            row = rows.get(target.key)
            if row is None or _changed(row, target) or row["checked_at"] + _every(
                    spec, row) <= now:
                when = row["checked_at"] if row is not None else datetime.min.replace(
                    tzinfo=now.tzinfo)
                due.append((when, target, spec, site["timezone"], row))
        _forget(conn, set(rows) - {t.key for t in wanted}, rows, now)
    due.sort(key=lambda d: (d[0], d[1].key))
    for _, target, spec, tz, row in due[:BATCH]:
        try:
            with conn.transaction():
                check(conn, target, spec, row, now=now, tz=ZoneInfo(tz))
        except TRANSIENT:
            raise
        except Exception:
            log.exception("forecast of %s/%s %s failed", *target.key)
            # tried again after `every`, not on every pass ahead of all the others
            conn.execute("UPDATE forecasts SET checked_at = %s WHERE site_id = %s"
                         " AND device_id = %s AND rule_id = %s", (now, *target.key))
    return min(len(due), BATCH)


def _every(spec: ForecastSpec, row: dict[str, Any]) -> timedelta:
    """How soon a condition is looked at again: sooner while its history is too short (a new
    site, a backfill under way), so that a first estimate comes minutes after the data."""
    return spec.every if row["points"] else min(spec.every, RETRY)


def _changed(row: dict[str, Any], target: Target) -> bool:
    """The condition itself changed (a new threshold, op or level): recompute now."""
    return (row["metric"], row["op"], row["threshold"], row["level"]) != (
        target.rule.metric, target.rule.op, target.threshold, target.level)


def _forget(conn: psycopg.Connection[Any], gone: set[tuple[str, str, str]],
            rows: dict[tuple[str, str, str], dict[str, Any]], now: datetime) -> None:
    """Conditions no longer forecast (configuration changed): withdraw their tickets."""
    for key in sorted(gone):
        row = rows[key]
        if row["state"] == "warned" and _live(conn, row["work_order_id"]):
            work_orders.transition(conn, row["work_order_id"], "cancel", actor=ACTOR, now=now,
                                   note="withdrawn: this condition is no longer forecast"
                                        " (site configuration)")
        conn.execute("DELETE FROM forecasts WHERE site_id = %s AND device_id = %s"
                     " AND rule_id = %s", key)


def _live(conn: psycopg.Connection[Any], wo_id: int | None) -> bool:
    if wo_id is None:
        return False
    row = conn.execute("SELECT state FROM work_orders WHERE id = %s", (wo_id,)).fetchone()
    return row is not None and row["state"] in work_orders.LIVE


def check(conn: psycopg.Connection[Any], target: Target, spec: ForecastSpec,
          row: dict[str, Any] | None, *, now: datetime, tz: ZoneInfo) -> Step:
    """Estimate one condition, decide, act on its ticket and store the estimate."""
    until = now.replace(minute=0, second=0, microsecond=0)  # complete hours only
    points = hourly_values(conn, target.site_id, target.device_id, target.rule.metric,
                           until - spec.window, until)
    estimate = forecast(points, op=target.rule.op, threshold=target.threshold, now=now,
                        horizon=spec.horizon, min_history=spec.min_history)
    alarm = conn.execute(
        "SELECT id, raised_at, work_order_id FROM alarms WHERE site_id = %s AND device_id = %s"
        " AND rule_id = %s AND state <> 'cleared' ORDER BY id DESC LIMIT 1",
        target.key).fetchone()
    state = row["state"] if row is not None else "idle"
    wo_id = row["work_order_id"] if row is not None else None
    step = decide(state, estimate, now=now, alarm_active=alarm is not None,
                  ticket_live=_live(conn, wo_id),
                  noted=row["noted_expected_at"] if row is not None else None,
                  noted_at=row["noted_at"] if row is not None else None,
                  min_confidence=spec.min_confidence, withdraw_below=spec.withdraw_below)
    generation = row["generation"] if row is not None else 0
    noted = row["noted_expected_at"] if row is not None else None
    noted_at = row["noted_at"] if row is not None else None
    if step.action == "open" and estimate is not None:
        generation += 1
        site, device, rule_id = target.key
        wo_id = work_orders.open_work_order(
            conn, site_id=site, device_id=device, severity=spec.severity,
            title=_title(target, estimate, tz), description=describe(target, estimate, spec, tz),
            source="preventive", source_ref=f"forecast:{site}/{device}/{rule_id}#{generation}",
            now=now, rule_id=rule_id, actor=ACTOR)
        noted, noted_at = estimate.expected, now
    elif step.action == "update" and estimate is not None and wo_id is not None:
        work_orders.add_note(conn, wo_id, "forecast moved: " + _estimate(estimate, spec, tz),
                             now=now, actor=ACTOR, action="forecast")
        noted, noted_at = estimate.expected, now
    elif step.action == "withdraw" and wo_id is not None:
        why = ("no crossing foreseen any more" if estimate is None or estimate.expected is None
               else f"a crossing within {_days(spec.horizon)} is no longer likely"
                    f" ({estimate.confidence:.0%})")
        work_orders.transition(conn, wo_id, "cancel", actor=ACTOR, now=now,
                               note=f"forecast withdrawn: {why}; trend"
                                    f" {_per_day(estimate)}")
        noted = None
    elif step.action == "quiet" and wo_id is not None and alarm is not None:
        fault = f" (fault ticket #{alarm['work_order_id']})" if alarm["work_order_id"] else ""
        work_orders.add_note(conn, wo_id, f"the alarm fired at {_local(alarm['raised_at'], tz)}"
                             f"{fault}; the forecast is quiet while it is active", now=now,
                             actor=ACTOR, action="forecast")
    _save(conn, target, estimate, step, row, now=now, wo_id=wo_id, generation=generation,
          noted=(noted, noted_at))
    return step


def _save(conn: psycopg.Connection[Any], target: Target, estimate: Forecast | None, step: Step,
          row: dict[str, Any] | None, *, now: datetime, wo_id: int | None, generation: int,
          noted: tuple[datetime | None, datetime | None]) -> None:
    changed_at = now if row is None or row["state"] != step.state else row["changed_at"]
    values = {
        "site_id": target.site_id, "device_id": target.device_id, "rule_id": target.rule.id,
        "metric": target.rule.metric, "op": target.rule.op, "threshold": target.threshold,
        "level": target.level, "state": step.state,
        "expected_at": estimate.expected if estimate else None,
        "earliest_at": estimate.earliest if estimate else None,
        "latest_at": estimate.latest if estimate else None,
        "confidence": estimate.confidence if estimate else None,
        "slope_per_day": estimate.slope_per_day if estimate else None,
        "points": estimate.points if estimate else 0,
        "noted_expected_at": noted[0], "noted_at": noted[1], "work_order_id": wo_id,
        "generation": generation,
        "checked_at": now, "changed_at": changed_at}
    names = [sql.Identifier(n) for n in values]
    conn.execute(
        sql.SQL("INSERT INTO forecasts ({}) VALUES ({}) ON CONFLICT (site_id, device_id,"
                " rule_id) DO UPDATE SET {}").format(
            sql.SQL(", ").join(names), sql.SQL(", ").join(sql.Placeholder() * len(names)),
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(n) for n in names[3:])),
        list(values.values()))


def list_forecasts(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
                   limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the latest estimates, soonest expected crossing first, and how many match."""
    where = Where()
    where.equals_all(filters, {"site": "site_id", "device": "device_id", "rule": "rule_id",
                               "state": "state"})
    where.equals("site_id", scope)
    return fetch_page(conn, "forecasts", where, limit=limit, offset=offset,
                      order="expected_at NULLS LAST, site_id, device_id, rule_id")


# ---- what the ticket says ------------------------------------------------------------------

def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:g} d"


def _per_day(estimate: Forecast | None) -> str:
    return "unknown" if estimate is None else f"{estimate.slope_per_day:+.3g} per day"


def _title(target: Target, estimate: Forecast, tz: ZoneInfo) -> str:
    when = _local(estimate.expected, tz)[:10] if estimate.expected else "soon"
    return f"Early warning: {target.rule.name} expected around {when}"[:200]


def _estimate(estimate: Forecast, spec: ForecastSpec, tz: ZoneInfo) -> str:
    """When, between when and when, how sure, on what trend."""
    expected = _local(estimate.expected, tz) if estimate.expected else "not within 90 days"
    earliest = _local(estimate.earliest, tz) if estimate.earliest else "now"
    latest = _local(estimate.latest, tz) if estimate.latest else "later than 90 days"
    span = ("the 90 % interval of the trend gives the same hour" if earliest == latest
            else f"between {earliest} and {latest} (90 % interval of the trend)")
    sure = ("over 99.9 %" if estimate.confidence >= 0.999
            else f"{math.floor(estimate.confidence * 1000) / 10:g} %")
    return (f"expected around {expected} ({tz.key}); {span}; probability of crossing within"
            f" {_days(spec.horizon)}: {sure}; trend {_per_day(estimate)} over the last"
            f" {_days(spec.window)} ({estimate.points} hourly values)")


def describe(target: Target, estimate: Forecast, spec: ForecastSpec, tz: ZoneInfo) -> str:
    """The preventive ticket's description."""
    rule = target.rule
    extreme = "highest" if rule.op in (">", ">=") else "lowest"
    return (f"Forecast: {rule.metric} of {target.device_id} will meet {rule.op}"
            f" {target.threshold:g} ({rule.name}, level {target.level}) "
            + _estimate(estimate, spec, tz)
            + f". The {extreme} hourly value today is about {estimate.now_value:.4g}."
            " Check the equipment before the alarm fires.")
