"""The I/O shell of the rules pipeline: evaluate → dedup → suppress → act, in one transaction.

`consume` takes committed ingest batches (telemetry, status) from the outbox, `tick` lets
time pass (hold times, no-data timeouts, ended suppressions, ticket deadlines). Each runs in
the caller's transaction: outbox rows are deleted in the transaction that raises the alarms
and opens the tickets they cause, so a crash anywhere in between leaves nothing half done.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from caretaker.scheduler import Job
from caretaker.settings import Settings
from caretaker.severity import SEVERITY_RANK
from rules import alarms, verification_store
from rules import state as rule_state
from rules.evaluate import (
    State,
    due_at,
    evaluate_offline,
    evaluate_readings,
    evaluate_time,
)
from rules.model import Decision, Reading, Rule, RuleError, rule_from_row
from rules.suppress import Mute, Target, first_mute, load_mutes
from tickets import work_orders
from tickets.policy import Policy, load_policy

log = logging.getLogger(__name__)

Key = rule_state.Key
EVENT_KINDS = ("telemetry", "status")


@dataclass
class Context:
    """Per-transaction caches: each site's mutes and policy, loaded once."""

    conn: psycopg.Connection[Any]
    now: datetime
    _mutes: dict[str, list[Mute]] = field(default_factory=dict)
    _policies: dict[str, Policy] = field(default_factory=dict)

    def mutes(self, site: str) -> list[Mute]:
        if site not in self._mutes:
            self._mutes[site] = load_mutes(self.conn, site, self.now)
        return self._mutes[site]

    def policy(self, site: str) -> Policy:
        if site not in self._policies:
            self._policies[site] = load_policy(self.conn, site)
        return self._policies[site]

    def forget_mutes(self, site: str) -> None:
        self._mutes.pop(site, None)


_BAD_OVERRIDES: set[tuple[str, str, str]] = set()  # warned about once per process


def for_device(rule: Rule, dev: dict[str, Any] | None, device: str) -> Rule:
    """The rule with the device's overrides; the rule itself if they do not fit it.

    Overrides are free JSON on the device (e.g. a `threshold` for a rule that now has
    levels): one device's bad override must not stop every reading of its batch.
    """
    try:
        return rule.for_device(dev.get("overrides") if dev else None)
    except RuleError as exc:
        if (rule.site_id, rule.id, device) not in _BAD_OVERRIDES:
            _BAD_OVERRIDES.add((rule.site_id, rule.id, device))
            log.warning("device %s/%s: overrides of rule %s ignored: %s", rule.site_id, device,
                        rule.id, exc)
        return rule


# ---- act -------------------------------------------------------------------------------

def act(ctx: Context, rule: Rule, device: str, decision: Decision) -> None:
    """Carry out one decision: raise, update, change the level of or clear the alarm; tickets."""
    conn, now = ctx.conn, ctx.now
    if decision.action == "update":
        alarms.update_alarm(conn, rule, device, decision, now=now)
        return
    if decision.action == "clear":
        cleared = alarms.clear_active(conn, rule.site_id, device, rule.id, now=now)
        if cleared is not None and rule.inhibits:
            ctx.forget_mutes(rule.site_id)
        return
    if decision.action == "level":
        changed = alarms.change_severity(conn, rule, device, decision, now=now)
        if changed is not None and (SEVERITY_RANK[changed[0]["severity"]]
                                    > SEVERITY_RANK[changed[1]]):
            follow_ticket(ctx, changed[0])
        return
    mute = first_mute(ctx.mutes(rule.site_id), Target(rule.site_id, device, rule.id), now)
    alarm, created = alarms.raise_alarm(conn, rule, device, decision, now=now,
                                        suppressed_by=mute.label if mute else None)
    if not created:
        follow_ticket(ctx, alarm)  # state was lost while the alarm stayed: it may have risen
        return
    if rule.inhibits:
        ctx.forget_mutes(rule.site_id)
    if mute is None:
        open_ticket(ctx, alarm)
        # an alarm of a kind that asks a guard to go and look: sent once, with the alarm
        verification_store.request(conn, alarm, now=now)


def follow_ticket(ctx: Context, alarm: dict[str, Any]) -> None:
    """An alarm's severity rose: open its ticket once it reaches open_at, or raise the ticket."""
    if alarm["suppressed_by"] is not None and alarm["suppression_ended_at"] is None:
        return  # the ticket opens when the suppression ends, at the peak reached
    if alarm["work_order_id"] is None:
        open_ticket(ctx, alarm)
    else:
        work_orders.raise_severity(ctx.conn, alarm["work_order_id"], alarm["peak_severity"],
                                   now=ctx.now)


def open_ticket(ctx: Context, alarm: dict[str, Any]) -> int | None:
    """Open (or link) the work order of an unsuppressed alarm if its peak calls for one."""
    policy = ctx.policy(alarm["site_id"])
    severity = alarm.get("peak_severity") or alarm["severity"]
    if SEVERITY_RANK[severity] < SEVERITY_RANK[policy.open_at]:
        return None
    value = alarm["last_value"] if alarm["last_value"] is not None else alarm["first_value"]
    description = alarm["message"] + (f" (value {value:g})" if value is not None else "")
    wo_id = work_orders.open_work_order(
        ctx.conn, site_id=alarm["site_id"], device_id=alarm["device_id"],
        severity=severity, title=alarm["message"].split(": ", 1)[-1][:200],
        description=f"{description}; alarm raised {alarm['raised_at'].isoformat()}",
        source="alarm", source_ref=f"alarm:{alarm['id']}", now=ctx.now,
        rule_id=alarm["rule_id"], alarm_id=alarm["id"])
    ctx.conn.execute("UPDATE alarms SET work_order_id = %s WHERE id = %s", (wo_id, alarm["id"]))
    # A repeat fault joins a live ticket opened at a lower severity: it follows this one.
    work_orders.raise_severity(ctx.conn, wo_id, severity, now=ctx.now)
    return wo_id


def _apply(ctx: Context, rules: dict[Key, Rule], decided: dict[Key, list[Decision]]) -> None:
    """Act on decisions, inhibiting rules first so what they explain is muted in this batch."""
    order = sorted(decided, key=lambda k: (rules[k].inhibits is None,
                                           -SEVERITY_RANK[rules[k].severity], k))
    for key in order:
        for decision in decided[key]:
            act(ctx, rules[key], key[2], decision)


# ---- telemetry and status from the ingest ----------------------------------------------

def _ts(item: dict[str, Any]) -> datetime:
    if "ts" in item and item["ts"] is not None:
        return datetime.fromtimestamp(float(item["ts"]) / 1000.0, UTC)
    return datetime.fromisoformat(str(item["time"]))


def parse_readings(payload: list[dict[str, Any]]) -> list[Reading]:
    """Readings from a telemetry outbox payload (contract 2)."""
    out = []
    for item in payload:
        value = item.get("value")
        out.append(Reading(site=item["site"], device=item["device"], metric=item["metric"],
                           ts=_ts(item), value=None if value is None else float(value),
                           text=item.get("text", item.get("text_value"))))
    return out


def _device_rows(conn: psycopg.Connection[Any], pairs: set[tuple[str, str]]
                 ) -> dict[tuple[str, str], dict[str, Any]]:
    if not pairs:
        return {}
    sites, devices = (list(c) for c in zip(*sorted(pairs), strict=True))
    rows = conn.execute(
        "SELECT d.site_id, d.id, d.type_id, d.overrides, d.last_seen, d.online, d.status,"
        " d.online_source"
        " FROM devices d JOIN unnest(%s::text[], %s::text[]) AS k(site_id, id)"
        " ON d.site_id = k.site_id AND d.id = k.id", (sites, devices)).fetchall()
    return {(r["site_id"], r["id"]): dict(r) for r in rows}


def _site_rules(conn: psycopg.Connection[Any], sites: set[str], *, kind: str | None = None
                ) -> list[Rule]:
    query = "SELECT * FROM rules WHERE enabled AND site_id = ANY(%s)"
    params: list[Any] = [sorted(sites)]
    if kind is not None:
        query += " AND kind = %s"
        params.append(kind)
    return [rule_from_row(r) for r in conn.execute(query + " ORDER BY site_id, id", params)]


def process_readings(ctx: Context, readings: list[Reading]) -> int:
    """Evaluate telemetry readings against the rules covering them; how many decisions."""
    if not readings:
        return 0
    conn = ctx.conn
    by_metric: dict[tuple[str, str], list[Rule]] = defaultdict(list)
    for rule in _site_rules(conn, {r.site for r in readings}):
        if rule.metric is not None:
            by_metric[(rule.site_id, rule.metric)].append(rule)
    devices = _device_rows(conn, {(r.site, r.device) for r in readings
                                  if (r.site, r.metric) in by_metric})
    groups: dict[Key, list[Reading]] = defaultdict(list)
    rules: dict[Key, Rule] = {}
    for reading in readings:
        candidates = by_metric.get((reading.site, reading.metric))
        if not candidates:
            continue
        dev = devices.get((reading.site, reading.device))
        if dev is not None and dev["status"] == "retired":
            continue
        dev_type = dev["type_id"] if dev else None
        for rule in candidates:
            if rule.applies_to(reading.device, dev_type):
                key = (reading.site, rule.id, reading.device)
                if key not in rules:
                    rules[key] = for_device(rule, dev, reading.device)
                groups[key].append(reading)
    if not groups:
        return 0
    # Most readings change nothing (an idle rule stays idle): find those without locks, then
    # lock, re-read and re-evaluate only the keys whose state or alarm would change.
    peeked = rule_state.load(conn, groups)
    busy = []
    for key, group in groups.items():
        before = peeked.get(key, {})
        after, decisions = evaluate_readings(rules[key], before, group, device=key[2])
        if decisions or after != before:
            busy.append(key)
    if not busy:
        return 0
    rule_state.lock_keys(conn, busy)
    stored = rule_state.load(conn, busy)
    decided: dict[Key, list[Decision]] = {}
    changes: dict[Key, tuple[State, datetime | None]] = {}
    for key in busy:
        before = stored.get(key, {})
        after, decisions = evaluate_readings(rules[key], before, groups[key], device=key[2])
        if after != before:
            changes[key] = (after, due_at(rules[key], after))
        if decisions:
            decided[key] = decisions
    rule_state.save(conn, changes, now=ctx.now)
    _apply(ctx, rules, decided)
    return sum(len(d) for d in decided.values())


def process_offline(ctx: Context, devices: dict[tuple[str, str], dict[str, Any]],
                    rules: list[Rule]) -> int:
    """Evaluate offline rules for these devices (rows with last_seen/online); decisions made."""
    keys: dict[Key, Rule] = {}
    for (site, device), dev in devices.items():
        if dev.get("status") == "retired":
            continue
        for rule in rules:
            if rule.site_id == site and rule.applies_to(device, dev.get("type_id")):
                keys[(site, rule.id, device)] = for_device(rule, dev, device)
    if not keys:
        return 0
    rule_state.lock_keys(ctx.conn, keys)
    stored = rule_state.load(ctx.conn, keys)
    decided: dict[Key, list[Decision]] = {}
    changes: dict[Key, tuple[State, datetime | None]] = {}
    for key, rule in keys.items():
        if rule.kind != "offline":
            continue
        dev = devices[(key[0], key[2])]
        before = stored.get(key, {})
        after, decisions = evaluate_offline(rule, before, last_seen=dev.get("last_seen"),
                                            online=dev.get("online"), now=ctx.now,
                                            device=key[2],
                                            planned=dev.get("online_source") == "planned")
        if after != before:
            changes[key] = (after, None)
        if decisions:
            decided[key] = decisions
    rule_state.save(ctx.conn, changes, now=ctx.now)
    _apply(ctx, keys, decided)
    return sum(len(d) for d in decided.values())


def process_status(ctx: Context, events: list[dict[str, Any]]) -> int:
    """React at once to devices reporting online/offline (status message or Last Will)."""
    if not events:
        return 0
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in sorted(events, key=_ts):
        latest[(ev["site"], ev["device"])] = ev
    rules = _site_rules(ctx.conn, {site for site, _ in latest}, kind="offline")
    if not rules:
        return 0
    devices = _device_rows(ctx.conn, set(latest))
    for pair, ev in latest.items():
        dev = devices.setdefault(pair, {"type_id": None, "overrides": {}, "last_seen": None,
                                        "online": None, "status": "unassigned"})
        if dev.get("online") is None:  # the ingest normally keeps devices.online itself
            dev["online"] = ev.get("status") == "online"
    return process_offline(ctx, devices, rules)


# Failures worth retrying the whole batch for (connection lost, deadlock, serialisation);
# anything else is a property of the batch and would fail again on every retry.
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


def consume(conn: psycopg.Connection[Any], now: datetime, *, limit: int = 20) -> int:
    """Take up to `limit` ingest batches, act on them, delete them; how many were taken.

    A batch that cannot be processed (bad payload, a bug) must not block every alarm behind
    it: it is retried alone, and if it fails alone it goes to dead_letters (source 'rules').
    """
    rows = conn.execute(
        "SELECT id, kind, payload FROM ingest_events WHERE kind = ANY(%s)"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (list(EVENT_KINDS), limit)).fetchall()
    if not rows:
        return 0
    try:
        with conn.transaction():
            _process(conn, now, rows)
    except TRANSIENT:
        raise
    except Exception:
        log.exception("processing %d ingest batches failed; retrying them one by one", len(rows))
        for row in rows:
            try:
                with conn.transaction():
                    _process(conn, now, [row])
            except TRANSIENT:
                raise
            except Exception as exc:
                log.exception("ingest batch %s cannot be processed; dead-lettered", row["id"])
                conn.execute(
                    "INSERT INTO dead_letters (source, topic, payload, reason)"
                    " VALUES ('rules', %s, %s, %s)"
                    " ON CONFLICT (source, topic, payload_hash, item) DO UPDATE"
                    " SET count = dead_letters.count + 1, last_received_at = now(),"
                    " reason = excluded.reason",
                    (f"ingest_events/{row['kind']}", json.dumps(row["payload"]).encode(),
                     f"{type(exc).__name__}: {exc}"[:1000]))
    conn.execute("DELETE FROM ingest_events WHERE id = ANY(%s)", ([r["id"] for r in rows],))
    return len(rows)


def _process(conn: psycopg.Connection[Any], now: datetime, rows: list[Any]) -> None:
    ctx = Context(conn, now)
    readings: list[Reading] = []
    statuses: list[dict[str, Any]] = []
    for row in rows:
        payload = row["payload"] if isinstance(row["payload"], list) else [row["payload"]]
        if row["kind"] == "telemetry":
            readings += parse_readings(payload)
        else:
            statuses += payload
    process_readings(ctx, readings)
    process_status(ctx, statuses)


# ---- the clock ---------------------------------------------------------------------------

def tick(conn: psycopg.Connection[Any], now: datetime) -> None:
    """Everything that happens because time passed: hold times, silence, unmuting, deadlines."""
    ctx = Context(conn, now)
    expire_holds(ctx)
    check_silence(ctx)
    unsuppress(ctx)


def expire_holds(ctx: Context) -> int:
    """Raise or clear alarms whose hold time ran out with no new reading."""
    keys = rule_state.due(ctx.conn, ctx.now)
    if not keys:
        return 0
    rule_state.lock_keys(ctx.conn, keys)
    stored = rule_state.load(ctx.conn, keys)
    sites = {k[0] for k in keys}
    by_id = {(r.site_id, r.id): r for r in _site_rules(ctx.conn, sites)}
    devices = _device_rows(ctx.conn, {(k[0], k[2]) for k in keys})
    rules: dict[Key, Rule] = {}
    decided: dict[Key, list[Decision]] = {}
    changes: dict[Key, tuple[State, datetime | None]] = {}
    for key in keys:
        if key not in stored:
            continue  # another worker handled it first
        base = by_id.get((key[0], key[1]))
        if base is None:  # rule deleted or disabled: nothing can come due any more
            changes[key] = ({}, None)
            continue
        dev = devices.get((key[0], key[2]))
        rule = rules[key] = for_device(base, dev, key[2])
        after, decisions = evaluate_time(rule, stored[key], ctx.now, device=key[2])
        changes[key] = (after, due_at(rule, after))
        if decisions:
            decided[key] = decisions
    rule_state.save(ctx.conn, changes, now=ctx.now)
    _apply(ctx, rules, decided)
    return sum(len(d) for d in decided.values())


def check_silence(ctx: Context) -> int:
    """Raise offline alarms for devices silent past their timeout; clear those heard again."""
    rows = ctx.conn.execute(
        "SELECT d.site_id, d.id, d.type_id, d.overrides, d.last_seen, d.online, d.status,"
        " d.online_source"
        " FROM rules r JOIN devices d ON d.site_id = r.site_id"
        "  AND (r.device_id = d.id OR (r.device_id IS NULL"
        "       AND (r.device_type IS NULL OR r.device_type = d.type_id)))"
        " LEFT JOIN rule_state s ON s.site_id = d.site_id AND s.rule_id = r.id"
        "  AND s.device_id = d.id"
        " WHERE r.enabled AND r.kind = 'offline' AND d.status <> 'retired' AND ("
        "  s.firing OR d.online = false OR d.overrides ? r.id"
        "  OR d.last_seen <= %s - make_interval(secs => (r.params->>'timeout')::float))",
        (ctx.now,)).fetchall()
    if not rows:
        return 0
    devices = {(r["site_id"], r["id"]): dict(r) for r in rows}
    rules = _site_rules(ctx.conn, {r["site_id"] for r in rows}, kind="offline")
    return process_offline(ctx, devices, rules)


def unsuppress(ctx: Context) -> int:
    """Open the tickets of active alarms whose maintenance window or inhibitor has ended."""
    rows = ctx.conn.execute(
        "SELECT * FROM alarms WHERE state <> 'cleared' AND suppressed_by IS NOT NULL"
        " AND suppression_ended_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED").fetchall()
    opened = 0
    for row in rows:
        alarm = dict(row)
        target = Target(alarm["site_id"], alarm["device_id"], alarm["rule_id"])
        if first_mute(ctx.mutes(alarm["site_id"]), target, ctx.now) is not None:
            continue
        ctx.conn.execute("UPDATE alarms SET suppression_ended_at = %s WHERE id = %s",
                         (ctx.now, alarm["id"]))
        alarms.add_history(ctx.conn, alarm["id"], at=ctx.now, action="unsuppressed",
                        actor="system", note=f"{alarm['suppressed_by']} ended")
        if alarm["work_order_id"] is None and open_ticket(ctx, alarm) is not None:
            opened += 1
    return opened


# ---- the worker's jobs ---------------------------------------------------------------------

def rule_jobs(settings: Settings) -> list[Job]:
    """The rules worker's jobs: the ingest inbox, the clock, the webhook outbox."""
    return [
        # The ingest NOTIFYs after each batch; the interval is only the fallback.
        Job("rules-inbox", 0.5, lambda conn, now: consume(conn, now), wakes_on=EVENT_KINDS),
        Job("rules-clock", settings.rules_tick_ms / 1000.0, tick),
    ]
