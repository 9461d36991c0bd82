"""Notifications about tickets and complaints: the one door every event goes out through.

`notify` is called inside the transaction that causes the event, so a notification is queued
exactly when its cause commits (the outbox pattern); delivery is the rules worker's job.
Events: opened, escalated, overdue, answered, closed (and the report/handover events that
reports/ sends). `audience` names who must hear of it beyond the site's usual receivers (e.g.
"quality" for a 严重 complaint, or an escalation level).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg

from tickets import webhook
from tickets.policy import load_policy

Subject = Literal["work_order", "complaint", "report", "handover"]


def notify(conn: psycopg.Connection[Any], *, site_id: str, subject: Subject, event: str,
           record: dict[str, Any], now: datetime, audience: Sequence[str] = (),
           extra: dict[str, Any] | None = None) -> int:
    """Queue one event about a record for every receiver it concerns; how many were queued."""
    if subject != "work_order":
        return 0
    queued = webhook.enqueue(conn, load_policy(conn, site_id), event, record, now=now,
                             extra=extra)
    return int(queued)
