"""The rules table: store, change, list and read rule definitions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from caretaker.errors import Conflict, NotFound
from caretaker.paging import Where, fetch_page
from rules.model import Rule, RuleError, parse_rule

COLUMNS = ("name", "kind", "metric", "enabled", "severity", "device_type", "device_id",
           "params", "inhibits", "description")


class RuleNotFound(NotFound):
    """No such rule (in the caller's scope)."""


class RuleConflict(Conflict):
    """A rule with that id exists already."""


def check_references(conn: psycopg.Connection[Any], rule: Rule) -> None:
    """Refuse a rule naming a site, device type or device that does not exist."""
    if conn.execute("SELECT 1 FROM sites WHERE id = %s", (rule.site_id,)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown site {rule.site_id!r}")
    if rule.device_type is not None and conn.execute(
            "SELECT 1 FROM device_types WHERE id = %s", (rule.device_type,)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown device_type {rule.device_type!r}")
    if rule.device_id is not None and conn.execute(
            "SELECT 1 FROM devices WHERE site_id = %s AND id = %s",
            (rule.site_id, rule.device_id)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown device {rule.device_id!r}")


def _values(rule: Rule) -> list[Any]:
    d = asdict(rule)
    return [Jsonb(d[c]) if c in ("params", "inhibits") and d[c] is not None else d[c]
            for c in COLUMNS]


def upsert_rule(conn: psycopg.Connection[Any], rule: Rule, *, now: datetime) -> None:
    """Insert or replace a rule by (site, id)."""
    check_references(conn, rule)
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                 for c in COLUMNS)
    # Unchanged rules keep their updated_at, so loading a file twice changes nothing.
    changed = sql.SQL(" OR ").join(sql.SQL("rules.{0} IS DISTINCT FROM EXCLUDED.{0}").format(
        sql.Identifier(c)) for c in COLUMNS)
    conn.execute(
        sql.SQL("INSERT INTO rules (site_id, id, {}, created_at, updated_at)"
                " VALUES (%s, %s, {}, %s, %s) ON CONFLICT (site_id, id) DO UPDATE SET {},"
                " updated_at = EXCLUDED.updated_at WHERE {}").format(
            cols, sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)), updates, changed),
        [rule.site_id, rule.id, *_values(rule), now, now])


def create_rule(conn: psycopg.Connection[Any], site_id: str, spec: dict[str, Any], *,
                now: datetime) -> dict[str, Any]:
    """Add a new rule from its definition; RuleConflict if the id is taken."""
    rule = parse_rule(site_id, spec)
    if get_rule(conn, site_id, rule.id) is not None:
        raise RuleConflict(f"rule {rule.id!r} exists already in site {site_id!r}")
    upsert_rule(conn, rule, now=now)
    return get_rule(conn, site_id, rule.id) or {}


def update_rule(conn: psycopg.Connection[Any], site_id: str, rule_id: str, changes: dict[str, Any],
                *, now: datetime) -> dict[str, Any]:
    """Change some fields of a rule (re-validated as a whole)."""
    row = get_rule(conn, site_id, rule_id)
    if row is None:
        raise RuleNotFound(f"rule {rule_id!r} not found")
    spec = to_spec(row)
    if "params" in changes:
        spec.update(changes.pop("params") or {})
    spec.update({k: v for k, v in changes.items() if k != "id"})
    upsert_rule(conn, parse_rule(site_id, spec), now=now)
    return get_rule(conn, site_id, rule_id) or {}


def to_spec(row: dict[str, Any]) -> dict[str, Any]:
    """A stored rule back in its definition shape."""
    spec = {"id": row["id"], "name": row["name"], "kind": row["kind"],
            "severity": row["severity"], "enabled": row["enabled"],
            "description": row["description"], **(row["params"] or {})}
    for key, column in (("metric", "metric"), ("device_type", "device_type"),
                        ("device", "device_id"), ("inhibits", "inhibits")):
        if row[column] is not None:
            spec[key] = row[column]
    return spec


def get_rule(conn: psycopg.Connection[Any], site_id: str, rule_id: str) -> dict[str, Any] | None:
    """One rule row, or None."""
    row = conn.execute("SELECT * FROM rules WHERE site_id = %s AND id = %s",
                       (site_id, rule_id)).fetchone()
    return dict(row) if row else None


FILTERS = {"site": "site_id", "kind": "kind", "metric": "metric", "enabled": "enabled",
           "severity": "severity", "device_type": "device_type", "device": "device_id"}


def list_rules(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
               limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of rules and how many match."""
    where = Where()
    where.equals_all(filters, FILTERS)
    where.equals("site_id", scope)
    return fetch_page(conn, "rules", where, order="site_id, id", limit=limit, offset=offset)


def watched_metrics(conn: psycopg.Connection[Any]) -> list[str]:
    """The metrics enabled rules watch: their new readings go to the ingest's outbox."""
    return [r["metric"] for r in conn.execute(
        "SELECT DISTINCT metric FROM rules WHERE enabled AND metric IS NOT NULL"
        " ORDER BY metric").fetchall()]
