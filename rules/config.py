"""Site-file sections of the rules package: `rules`, `maintenance_windows`, `work_order_policy`.

Each section is a type the whole file validates through (the API takes the same models) and
a loader given the validated value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from pydantic import AfterValidator

from caretaker.site_config import unique_ids
from rules import catalog, maintenance
from rules.maintenance import MaintenanceWindow
from rules.model import Rule, RuleError
from tickets.policy import PolicySpec, save_policy


def _named(items: list[MaintenanceWindow]) -> list[MaintenanceWindow]:
    missing = [n for n, w in enumerate(items) if w.id is None]
    if missing:
        raise ValueError(f"each window of a site file needs an id (item {missing[0]} has none)")
    return unique_ids(items)


Rules = Annotated[list[Rule], AfterValidator(unique_ids)]
Windows = Annotated[list[MaintenanceWindow], AfterValidator(_named)]


def _own_site(site_id: str, given: str | None, what: str) -> None:
    if given and given != site_id:
        raise RuleError(f"{what}: site_id {given!r} is not this file's site {site_id!r}")


def load_rules(conn: psycopg.Connection[Any], site_id: str, rules: list[Rule], *,
               now: datetime) -> None:
    """Upsert the site's rules by id."""
    for rule in rules:
        _own_site(site_id, rule.site_id, f"rule {rule.id}")
        catalog.upsert_rule(conn, rule.model_copy(update={"site_id": site_id}), now=now)


def load_maintenance_windows(conn: psycopg.Connection[Any], site_id: str,
                             windows: list[MaintenanceWindow], *, now: datetime) -> None:
    """Upsert the site's maintenance windows by id (naive times are the site's local time)."""
    for window in windows:
        _own_site(site_id, window.site_id, f"maintenance window {window.id}")
        values = {**window.model_dump(include={"device_id", "starts_at", "ends_at", "reason"}),
                  "created_by": "site configuration"}
        maintenance.upsert_window(conn, site_id, window.id, values, now=now)


def load_work_order_policy(conn: psycopg.Connection[Any], site_id: str, spec: PolicySpec, *,
                           now: datetime) -> None:
    """Store the site's work-order policy (deadlines, open_at, repeats, webhook)."""
    save_policy(conn, site_id, spec, now=now)

