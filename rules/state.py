"""Rule state store: per (site, rule, device) evaluation state in `rule_state`, with key locks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from caretaker.locks import lock_key
from rules.evaluate import State

Key = tuple[str, str, str]  # (site, rule, device)


def lock_id(key: Key) -> int:
    """The advisory lock number of one (site, rule, device)."""
    return lock_key("rule", *key)


def lock_keys(conn: psycopg.Connection[Any], keys: Iterable[Key]) -> None:
    """Take the transaction's locks on these keys, in one global order (no deadlocks)."""
    ids = sorted({lock_id(k) for k in keys})
    if ids:
        conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k",
                     (ids,))


def load(conn: psycopg.Connection[Any], keys: Iterable[Key]) -> dict[Key, State]:
    """The stored states of these keys (absent keys are idle)."""
    keys = list(keys)
    if not keys:
        return {}
    sites, rules, devices = (list(col) for col in zip(*keys, strict=True))
    rows = conn.execute(
        "SELECT s.site_id, s.rule_id, s.device_id, s.state FROM rule_state s"
        " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(site_id, rule_id, device_id)"
        " USING (site_id, rule_id, device_id)", (sites, rules, devices)).fetchall()
    return {(r["site_id"], r["rule_id"], r["device_id"]): r["state"] for r in rows}


def save(conn: psycopg.Connection[Any], changes: dict[Key, tuple[State, datetime | None]], *,
         now: datetime) -> None:
    """Store changed states: idle ones are deleted, others upserted with their due time."""
    idle = [k for k, (st, _) in changes.items() if not st]
    busy = [(k, st, due) for k, (st, due) in changes.items() if st]
    if idle:
        sites, rules, devices = (list(col) for col in zip(*idle, strict=True))
        conn.execute(
            "DELETE FROM rule_state s USING unnest(%s::text[], %s::text[], %s::text[])"
            " AS k(site_id, rule_id, device_id) WHERE s.site_id = k.site_id"
            " AND s.rule_id = k.rule_id AND s.device_id = k.device_id", (sites, rules, devices))
    if busy:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rule_state (site_id, rule_id, device_id, state, firing, due_at,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (site_id, rule_id, device_id) DO UPDATE SET state = EXCLUDED.state,"
                " firing = EXCLUDED.firing, due_at = EXCLUDED.due_at,"
                " updated_at = EXCLUDED.updated_at",
                [(k[0], k[1], k[2], Jsonb(st), bool(st.get("firing")), due, now)
                 for k, st, due in busy])


def reset(conn: psycopg.Connection[Any], key: Key) -> None:
    """Forget a key's state (after its alarm was cleared by hand)."""
    lock_keys(conn, [key])
    conn.execute("DELETE FROM rule_state WHERE site_id = %s AND rule_id = %s AND device_id = %s",
                 key)


def due(conn: psycopg.Connection[Any], now: datetime, *, limit: int = 1000) -> list[Key]:
    """Keys whose hold time (or clear hold) has run out by `now`."""
    rows = conn.execute("SELECT site_id, rule_id, device_id FROM rule_state WHERE due_at <= %s"
                        " ORDER BY due_at LIMIT %s", (now, limit)).fetchall()
    return [(r["site_id"], r["rule_id"], r["device_id"]) for r in rows]
