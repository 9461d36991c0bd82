"""Shared set-up for the ticket tests: a site with a zone, checkpoints and a device; tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from tickets.policy import parse_spec, save_policy

SITE = "rv"
OTHER = "other"
API = "/api/v1"
PHONE = "13812345678"
MASKED_PHONE = "138****5678"
Tokens = Callable[..., dict[str, str]]


def make_sites(conn: psycopg.Connection[Any], *, policy: dict[str, Any] | None = None,
               timezone: str = "Asia/Shanghai") -> None:
    """Site `rv` (zone b3 with checkpoint cp-b3 and pump p-1) and site `other` (zone z9)."""
    conn.execute("INSERT INTO sites (id, name, timezone) VALUES (%s, 'Riverside', %s),"
                 " (%s, 'Other', 'UTC')", (SITE, timezone, OTHER))
    conn.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump')"
                 " ON CONFLICT DO NOTHING")
    conn.execute("INSERT INTO zones (site_id, id, name) VALUES (%s, 'b3', 'B3 car park'),"
                 " (%s, 'roof', 'Roof'), (%s, 'z9', 'Elsewhere')", (SITE, SITE, OTHER))
    conn.execute("INSERT INTO devices (site_id, id, type_id, zone_id, name) VALUES"
                 " (%s, 'p-1', 'water_pump', 'b3', 'Pump 1'), (%s, 'p-9', 'water_pump', 'z9',"
                 " 'Pump 9')", (SITE, OTHER))
    conn.execute("INSERT INTO checkpoints (site_id, id, zone_id, name, tag) VALUES"
                 " (%s, 'cp-roof', 'roof', 'Roof door', 'TAG-ROOF'),"
                 " (%s, 'cp-z9', 'z9', 'Far', 'TAG-Z9')", (SITE, OTHER))
    if policy is not None:
        save_policy(conn, SITE, parse_spec(policy), now=datetime(2026, 1, 1, tzinfo=UTC))
    conn.commit()


def ticket(**over: Any) -> dict[str, Any]:
    """A manual ticket's body, with fields replaced as given."""
    body: dict[str, Any] = {
        "site": SITE, "category": "公区维修", "urgency": "急修", "channel": "phone",
        "reporter": {"name": "陈女士", "unit": "3-1201", "phone": PHONE},
        "description": "B3 车库入口积水\n排水沟堵塞"}
    body.update(over)
    return body


def complaint(**over: Any) -> dict[str, Any]:
    """A complaint's body, with fields replaced as given."""
    body: dict[str, Any] = {
        "site": SITE, "grade": "一般", "category": "秩序管理", "channel": "phone",
        "complainant": {"name": "王先生", "unit": "2-1503", "phone": PHONE},
        "description": "楼上装修夜间 22:30 仍在施工"}
    body.update(over)
    return body


class NotifySpy:
    """Records each call of tickets.notify.notify made by a module, and lets it through.

    The notification's delivery (receivers, outbox) is tested with notify itself; these tests
    check that tickets and complaints announce the right events to the right audience.
    """

    def __init__(self, real: Callable[..., int]) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def __call__(self, conn: psycopg.Connection[Any], **kwargs: Any) -> int:
        self.calls.append(kwargs)
        return self.real(conn, **kwargs)

    def events(self, subject: str) -> list[tuple[str, list[str]]]:
        """(event, audience) of each call about this subject, in order."""
        return [(c["event"], list(c.get("audience", ()))) for c in self.calls
                if c["subject"] == subject]

