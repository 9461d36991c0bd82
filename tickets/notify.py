"""Notifications about tickets and complaints: the one door every event goes out through.

`notify` is called inside the transaction that causes the event, so a notification is queued
exactly when its cause commits (the outbox pattern); the worker's delivery job sends it.
Subjects and events: work_order and complaint — opened, escalated, overdue, answered, closed;
report — weekly; handover — unsigned; verification (a guard sent to look at an alarm) —
opened, answered, overdue. `audience` names who must hear of it beyond the site's
usual receivers (e.g. "quality" for a 严重 complaint, or an escalation level's people).

Receivers are the site's `notifications:` section (tickets/notification_policy.py), plus the
generic webhook of the work-order policy (`work_order_policy.webhook`) or, when it names
none, CARETAKER_WEBHOOK_URL, which hear work-order events as they always have.
For a report or a handover sheet, `extra` may give `title`, `lines` (a few strings) and
`link` (a whole URL) or `path` (under CARETAKER_PUBLIC_URL) for the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg

from caretaker.settings import get_settings
from tickets import outbox
from tickets.messages import compose, jsonable, personal_masked, place_of
from tickets.notification_policy import load_spec, targets_for
from tickets.policy import load_policy

Subject = Literal["work_order", "complaint", "report", "handover", "verification"]


def notify(conn: psycopg.Connection[Any], *, site_id: str, subject: Subject, event: str,
           record: dict[str, Any], now: datetime, audience: Sequence[str] = (),
           extra: dict[str, Any] | None = None) -> int:
    """Queue one event about a record for every receiver it concerns; how many were queued."""
    settings = get_settings()
    spec = load_spec(conn, site_id)
    legacy = None
    if subject == "work_order":
        policy = load_policy(conn, site_id)
        url = policy.webhook_url or settings.webhook_url
        if url and event in policy.webhook_events:
            legacy = url
    targets = targets_for(spec, subject=subject, event=event, audience=audience,
                          legacy_url=legacy)
    if not targets:
        return 0
    message = compose(subject=subject, event=event, record=record,
                      place=place_of(conn, site_id, record), language=spec.language,
                      base=settings.link_base(), extra=extra)
    payload = {**jsonable(extra or {}), "event": f"{subject}.{event}", "at": now.isoformat(),
               "site": site_id, subject: jsonable(personal_masked(record)),
               **message.jsonable()}
    for target in targets:
        outbox.enqueue(conn, site_id=site_id, subject=subject, event=event, target=target,
                       payload=payload, now=now)
    return len(targets)
