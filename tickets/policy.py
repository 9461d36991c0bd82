"""A site's work-order policy: which alarms open tickets, deadlines, repeats, webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from caretaker.durations import seconds as parse_duration
from caretaker.errors import Invalid as RuleError
from caretaker.severity import SEVERITIES

DEFAULT_DEADLINES: dict[str, tuple[float, float]] = {  # severity -> (respond, resolve) seconds
    "critical": (15 * 60, 4 * 3600),
    "major": (30 * 60, 24 * 3600),
    "minor": (4 * 3600, 72 * 3600),
    "warning": (24 * 3600, 7 * 86400),
}
PRIORITY = {"critical": 1, "major": 2, "minor": 3, "warning": 4}
EVENTS = ("opened", "escalated", "closed")


@dataclass(frozen=True)
class Policy:
    """How a site turns alarms into work orders."""

    open_at: str = "minor"  # alarms of this severity or worse open a work order
    deadlines: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(
        DEFAULT_DEADLINES))
    repeat_within: float = 7 * 86400  # a fault within this long of a ticket is a repeat
    repeat_action: str = "link"  # resolved/closed recent ticket: "link" a new one or "reopen"
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] = EVENTS

    def deadlines_for(self, severity: str, now: datetime) -> tuple[datetime, datetime]:
        """respond_by and resolve_by for a ticket of this severity opened at `now`."""
        respond, resolve = self.deadlines.get(severity, DEFAULT_DEADLINES[severity])
        return now + timedelta(seconds=respond), now + timedelta(seconds=resolve)


def parse_policy(spec: dict[str, Any] | None) -> Policy:
    """A policy from its YAML/JSON shape (every key optional)."""
    spec = dict(spec or {})
    if not isinstance(spec, dict):
        raise RuleError("work_order_policy must be a mapping")
    unknown = set(spec) - {"open_at", "deadlines", "repeat_within", "repeat_action", "webhook"}
    if unknown:
        raise RuleError(f"work_order_policy: unknown key(s) {', '.join(sorted(unknown))}")
    open_at = spec.get("open_at", "minor")
    if open_at not in SEVERITIES:
        raise RuleError(f"work_order_policy.open_at: {open_at!r} is not a severity")
    deadlines = dict(DEFAULT_DEADLINES)
    for severity, d in (spec.get("deadlines") or {}).items():
        if severity not in SEVERITIES or not isinstance(d, dict):
            raise RuleError(f"work_order_policy.deadlines: bad entry {severity!r}")
        respond, resolve = deadlines[severity]
        deadlines[severity] = (
            parse_duration(d.get("respond", respond), what=f"{severity}.respond"),
            parse_duration(d.get("resolve", resolve), what=f"{severity}.resolve"),
        )
    action = spec.get("repeat_action", "link")
    if action not in ("link", "reopen"):
        raise RuleError("work_order_policy.repeat_action must be link or reopen")
    webhook = spec.get("webhook") or {}
    if isinstance(webhook, str):
        webhook = {"url": webhook}
    events = tuple(webhook.get("events", EVENTS))
    if not set(events) <= set(EVENTS):
        raise RuleError(f"work_order_policy.webhook.events: one or more of {', '.join(EVENTS)}")
    return Policy(open_at=open_at, deadlines=deadlines,
                  repeat_within=parse_duration(spec.get("repeat_within", 7 * 86400),
                                               what="repeat_within"),
                  repeat_action=action, webhook_url=webhook.get("url"), webhook_events=events)


def load_policy(conn: psycopg.Connection[Any], site_id: str) -> Policy:
    """The site's policy (defaults when it has none)."""
    row = conn.execute("SELECT policy FROM work_order_policies WHERE site_id = %s",
                       (site_id,)).fetchone()
    return parse_policy(row["policy"] if row else None)


def save_policy(conn: psycopg.Connection[Any], site_id: str, spec: dict[str, Any], *,
                now: datetime) -> None:
    """Validate and store a site's policy (replacing the previous one)."""
    parse_policy(spec)
    conn.execute(
        "INSERT INTO work_order_policies (site_id, policy, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET policy = EXCLUDED.policy,"
        " updated_at = EXCLUDED.updated_at", (site_id, Jsonb(spec), now))
