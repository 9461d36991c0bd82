"""Site-configuration loaders (contract 1): `rules`, `maintenance_windows`, `work_order_policy`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from dateutil import parser as dateparser

from caretaker.errors import Invalid
from rules import catalog, maintenance
from rules.model import RuleError, parse_rule
from tickets.policy import save_policy


@contextmanager
def _as_config_error(section: str) -> Iterator[None]:
    """Report a bad entry the way `caretaker load` reports configuration errors."""
    try:
        yield
    except Invalid as exc:
        from caretaker.site_config import SiteConfigError

        raise SiteConfigError(f"{section}: {exc}") from exc


def load_rules(conn: psycopg.Connection[Any], site_id: str, items: Any, *, now: datetime) -> None:
    """Upsert the site's rules by id."""
    with _as_config_error("rules"):
        if not isinstance(items, list):
            raise RuleError("must be a list of rules")
        rules = [parse_rule(site_id, item) for item in items]
        ids = [r.id for r in rules]
        if len(set(ids)) != len(ids):
            twice = sorted(i for i in ids if ids.count(i) > 1)
            raise RuleError(f"a rule id appears twice: {twice}")
        for rule in rules:
            catalog.upsert_rule(conn, rule, now=now)


def _when(value: Any, tz: ZoneInfo, what: str) -> datetime:
    """A YAML time (ISO string or timestamp) as an aware datetime; naive means site time."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time())
    else:
        try:
            when = dateparser.isoparse(str(value))
        except ValueError:
            raise RuleError(f"{what}: {value!r} is not a date-time like 2026-11-24T09:00") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def load_maintenance_windows(conn: psycopg.Connection[Any], site_id: str, items: Any, *,
                             now: datetime) -> None:
    """Upsert the site's maintenance windows by id ({id, device?, start, end, reason})."""
    with _as_config_error("maintenance_windows"):
        if not isinstance(items, list):
            raise RuleError("must be a list of windows")
        row = conn.execute("SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
        tz = ZoneInfo(row["timezone"] if row else "UTC")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("id") or not item.get("reason"):
                raise RuleError(f"[{i}]: needs id, start, end and reason")
            values = {"device_id": item.get("device"),
                      "starts_at": _when(item.get("start"), tz, f"[{i}].start"),
                      "ends_at": _when(item.get("end"), tz, f"[{i}].end"),
                      "reason": str(item["reason"]), "created_by": "site configuration"}
            maintenance.upsert_window(conn, site_id, str(item["id"]), values, now=now)


def load_work_order_policy(conn: psycopg.Connection[Any], site_id: str, items: Any, *,
                           now: datetime) -> None:
    """Store the site's work-order policy (deadlines, open_at, repeats, webhook)."""
    with _as_config_error("work_order_policy"):
        if not isinstance(items, dict):
            raise RuleError("must be a mapping")
        row = conn.execute("SELECT policy FROM work_order_policies WHERE site_id = %s",
                           (site_id,)).fetchone()
        if row is None or row["policy"] != items:
            save_policy(conn, site_id, items, now=now)
