"""The rules table: store, change, list and read rule definitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from caretaker.errors import Conflict, NotFound
from caretaker.paging import Where, fetch_page
from rules.model import Rule, RuleError, parse_rule, rule_columns, rule_from_row

COLUMNS = ("name", "kind", "metric", "enabled", "severity", "device_type", "device_id",
           "params", "inhibits", "description")


class RuleNotFound(NotFound):
    """No such rule (in the caller's scope)."""


class RuleConflict(Conflict):
    """A rule with that id exists already."""


def check_references(conn: psycopg.Connection[Any], rule: Rule) -> None:
    """Refuse a rule naming a site, device type or device that does not exist."""
    if not rule.site_id or conn.execute(
            "SELECT 1 FROM sites WHERE id = %s", (rule.site_id,)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown site {rule.site_id!r}")
    if rule.device_type is not None and conn.execute(
            "SELECT 1 FROM device_types WHERE id = %s", (rule.device_type,)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown device_type {rule.device_type!r}")
    if rule.device_id is not None and conn.execute(
            "SELECT 1 FROM devices WHERE site_id = %s AND id = %s",
            (rule.site_id, rule.device_id)).fetchone() is None:
        raise RuleError(f"rule {rule.id}: unknown device {rule.device_id!r}")


def _values(rule: Rule) -> list[Any]:
    d = rule_columns(rule)
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


def create_rule(conn: psycopg.Connection[Any], rule: Rule, *, now: datetime) -> Rule:
    """Add a new rule (its site_id set); RuleConflict if the id is taken."""
    site_id = rule.site_id
    if get_rule(conn, site_id, rule.id) is not None:
        raise RuleConflict(f"rule {rule.id!r} exists already in site {site_id!r}")
    upsert_rule(conn, rule, now=now)
    return rule


def update_rule(conn: psycopg.Connection[Any], site_id: str, rule_id: str, changes: dict[str, Any],
                *, now: datetime) -> Rule:
    """Change some fields of a rule (in its written shape; re-validated as a whole)."""
    current = get_rule(conn, site_id, rule_id)
    if current is None:
        raise RuleNotFound(f"rule {rule_id!r} not found")
    spec = current.definition()
    if changes.get("device") is not None:
        spec.pop("device_type", None)  # a new scope replaces the old one
    if changes.get("device_type") is not None:
        spec.pop("device", None)
    if changes.get("levels") is not None:  # levels replace a single threshold, and back
        for key in ("threshold", "clear", "severity"):
            if key not in changes:
                spec.pop(key, None)
    elif changes.get("threshold") is not None:
        spec.pop("levels", None)
    spec.update({k: v for k, v in changes.items() if k not in ("id", "site_id")})
    rule = parse_rule(site_id, {k: v for k, v in spec.items() if v is not None})
    upsert_rule(conn, rule, now=now)
    return rule


def get_rule(conn: psycopg.Connection[Any], site_id: str, rule_id: str) -> Rule | None:
    """One rule, or None."""
    row = conn.execute("SELECT * FROM rules WHERE site_id = %s AND id = %s",
                       (site_id, rule_id)).fetchone()
    return rule_from_row(row) if row else None


def stamps(conn: psycopg.Connection[Any], site_id: str, rule_id: str) -> dict[str, Any]:
    """A rule's created_at and updated_at."""
    row = conn.execute("SELECT created_at, updated_at FROM rules WHERE site_id = %s AND id = %s",
                       (site_id, rule_id)).fetchone()
    return {"created_at": row["created_at"], "updated_at": row["updated_at"]} if row else {}


FILTERS = {"site": "site_id", "kind": "kind", "metric": "metric", "enabled": "enabled",
           "severity": "severity", "device_type": "device_type", "device": "device_id"}


def list_rules(conn: psycopg.Connection[Any], *, filters: dict[str, Any], scope: str | None,
               limit: int, offset: int) -> tuple[list[tuple[Rule, dict[str, Any]]], int]:
    """One page of rules (each with its row's times) and how many match."""
    where = Where()
    where.equals_all(filters, FILTERS)
    where.equals("site_id", scope)
    rows, total = fetch_page(conn, "rules", where, order="site_id, id", limit=limit,
                             offset=offset)
    return [(rule_from_row(r), {"created_at": r["created_at"], "updated_at": r["updated_at"]})
            for r in rows], total


def watched_metrics(conn: psycopg.Connection[Any]) -> list[str]:
    """The metrics enabled rules watch: their new readings go to the ingest's outbox."""
    return [r["metric"] for r in conn.execute(
        "SELECT DISTINCT metric FROM rules WHERE enabled AND metric IS NOT NULL"
        " ORDER BY metric").fetchall()]
