"""Shared set-up for the rules tests: a small site, rules, and ingest batches per contract 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from rules import engine
from rules.config import load_rules, load_work_order_policy
from rules.model import parse_rule
from tickets.policy import parse_spec

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SITE = "rs"

RULES: list[dict[str, Any]] = [
    {"id": "vib-major", "name": "Pump vibration high", "metric": "vibration",
     "device_type": "water_pump", "op": ">=", "threshold": 7.1, "clear": 6.5,
     "severity": "major"},
    {"id": "vib-held", "name": "Pump vibration held", "metric": "vib_held",
     "device_type": "water_pump", "op": ">=", "threshold": 7.1, "for": "30s",
     "severity": "major"},
    {"id": "offline", "name": "Device offline", "kind": "offline", "timeout": "5m",
     "severity": "major"},
    {"id": "mains-lost", "name": "Mains voltage lost", "metric": "voltage",
     "device": "meter-main", "op": "<", "threshold": 100, "severity": "critical",
     "inhibits": ["offline", "vib-major"]},
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_site(conn: psycopg.Connection[Any], *, rules: list[dict[str, Any]] | None = None,
              policy: dict[str, Any] | None = None) -> None:
    """A site with three pumps, a meter and the given (or the default) rules."""
    conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'Test site')", (SITE,))
    conn.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump'),"
                 " ('power_meter', 'meter') ON CONFLICT DO NOTHING")
    for dev, typ in (("pump-1", "water_pump"), ("pump-2", "water_pump"),
                     ("pump-3", "water_pump"), ("meter-main", "power_meter")):
        conn.execute("INSERT INTO devices (site_id, id, type_id, name, last_seen, online)"
                     " VALUES (%s, %s, %s, %s, %s, true)", (SITE, dev, typ, dev, T0))
    load_rules(conn, SITE, [parse_rule(SITE, r) for r in (RULES if rules is None else rules)],
               now=T0)
    if policy is not None:
        load_work_order_policy(conn, SITE, parse_spec(policy), now=T0)
    conn.commit()


def publish(conn: psycopg.Connection[Any], device: str, when: datetime, commit: bool = True,
            **values: float) -> None:
    """What the ingest does for one message: telemetry rows, last_seen, one outbox row."""
    items = []
    for metric, value in values.items():
        conn.execute("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                     " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (when, SITE, device, metric, value))
        items.append({"site": SITE, "device": device, "metric": metric,
                      "ts": int(when.timestamp() * 1000), "value": value, "text": None})
    conn.execute("UPDATE devices SET last_seen = greatest(last_seen, %s), online = true"
                 " WHERE site_id = %s AND id = %s", (when, SITE, device))
    conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('telemetry', %s)",
                 (json.dumps(items),))
    if commit:
        conn.commit()


def publish_status(conn: psycopg.Connection[Any], device: str, when: datetime, status: str,
                   source: str = "lwt") -> None:
    """What the ingest does for a status message or Last Will."""
    conn.execute("INSERT INTO device_status (time, site_id, device_id, status, source)"
                 " VALUES (%s, %s, %s, %s, %s)", (when, SITE, device, status, source))
    conn.execute("UPDATE devices SET online = %s, online_changed_at = %s"
                 " WHERE site_id = %s AND id = %s", (status == "online", when, SITE, device))
    conn.execute("INSERT INTO ingest_events (kind, payload) VALUES ('status', %s)",
                 (json.dumps([{"site": SITE, "device": device,
                               "ts": int(when.timestamp() * 1000), "status": status,
                               "source": source}]),))
    conn.commit()


def run(conn: psycopg.Connection[Any], now: datetime) -> int:
    """One pass of the worker's inbox job in its own transaction."""
    with conn.transaction():
        return engine.consume(conn, now)


def tick(conn: psycopg.Connection[Any], now: datetime) -> None:
    """One pass of the worker's clock job in its own transaction."""
    with conn.transaction():
        engine.tick(conn, now)


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(query, params)]  # type: ignore[arg-type]
