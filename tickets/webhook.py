"""Outbound webhook: ticket events queued in an outbox table, POSTed as JSON with back-off."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx2 as httpx  # httpx2: the maintained httpx line (starlette needs it too)
import psycopg
from psycopg.types.json import Jsonb

from caretaker.backoff import backoff
from caretaker.db import connect
from caretaker.settings import Settings, get_settings
from tickets.policy import Policy

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BACKOFF_FIRST = 1.0  # seconds; doubles per failed attempt
BACKOFF_MAX = 300.0
SEND_TIMEOUT = 2.0  # a slow receiver must not hold up the worker's other jobs for long
BUDGET = 1.5  # seconds one delivery run may spend before yielding to the other jobs


def jsonable(value: Any) -> Any:
    """A row's values made JSON-serialisable (times as ISO 8601)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def enqueue(conn: psycopg.Connection[Any], policy: Policy, event: str, work_order: dict[str, Any],
            *, now: datetime, extra: dict[str, Any] | None = None) -> bool:
    """Queue a ticket event for the site's webhook (or the global one); False if none applies."""
    url = policy.webhook_url or get_settings().webhook_url
    if not url or event not in policy.webhook_events:
        return False
    payload = {"event": f"work_order.{event}", "at": now.isoformat(),
               "work_order": jsonable(work_order), **(extra or {})}
    conn.execute(
        "INSERT INTO webhook_outbox (url, event, payload, created_at, next_attempt)"
        " VALUES (%s, %s, %s, %s, %s)", (url, event, Jsonb(payload), now, now))
    return True


def deliver_due(conn: psycopg.Connection[Any], now: datetime, *, limit: int = 20,
                client: httpx.Client | None = None) -> int:
    """POST the due outbox rows; reschedule failures with back-off. Returns how many were sent."""
    rows = conn.execute(
        "SELECT id, url, payload, attempts FROM webhook_outbox"
        " WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt <= %s"
        " ORDER BY next_attempt, id LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
    if not rows:
        return 0
    sent = 0
    started = time.monotonic()
    own = client is None
    http = client or httpx.Client(timeout=SEND_TIMEOUT)
    try:
        for row in rows:
            if time.monotonic() - started > BUDGET:
                break
            error = _post(http, row["url"], row["payload"])
            attempts = row["attempts"] + 1
            if error is None:
                conn.execute("UPDATE webhook_outbox SET attempts = %s, delivered_at = %s,"
                             " last_error = NULL WHERE id = %s", (attempts, now, row["id"]))
                sent += 1
            elif attempts >= MAX_ATTEMPTS:
                log.warning("webhook %s gave up after %d attempts: %s", row["id"], attempts, error)
                conn.execute("UPDATE webhook_outbox SET attempts = %s, failed_at = %s,"
                             " last_error = %s WHERE id = %s", (attempts, now, error, row["id"]))
            else:
                conn.execute(
                    "UPDATE webhook_outbox SET attempts = %s, next_attempt = %s, last_error = %s"
                    " WHERE id = %s",
                    (attempts, now + timedelta(seconds=backoff(attempts, first=BACKOFF_FIRST,
                                                                 cap=BACKOFF_MAX)),
                     error, row["id"]))
    finally:
        if own:
            http.close()
    return sent


def _post(http: httpx.Client, url: str, payload: dict[str, Any]) -> str | None:
    """POST one payload; None on a 2xx answer, else what went wrong."""
    try:
        response = http.post(url, json=payload)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def delivery_job(settings: Settings) -> Callable[[psycopg.Connection[Any], datetime],
                                                  threading.Thread | None]:
    """A scheduler job that delivers in a thread of its own with its own connection.

    A slow or hanging receiver then never holds up the worker's other jobs (the inbox that
    turns faults into tickets runs on the same scheduler loop). Returns the thread started.
    """
    running = threading.Lock()

    def work(now: datetime) -> None:
        try:
            with connect(settings.db_url()) as conn:
                deliver_due(conn, now)
        except Exception:
            log.exception("webhook delivery failed; retrying on the next run")
        finally:
            running.release()

    def job(conn: psycopg.Connection[Any], now: datetime) -> threading.Thread | None:
        due = conn.execute("SELECT EXISTS (SELECT 1 FROM webhook_outbox WHERE delivered_at IS"
                           " NULL AND failed_at IS NULL AND next_attempt <= %s) AS due",
                           (now,)).fetchone()
        if not due or not due["due"]:
            return None
        if not running.acquire(blocking=False):
            return None  # the previous delivery is still under way
        thread = threading.Thread(target=work, args=(now,), name="webhooks", daemon=True)
        thread.start()
        return thread

    return job
