"""The notification outbox: rows queued in the transaction that causes them, sent per channel
with back-off, given up (and recorded) after CARETAKER_NOTIFY_MAX_ATTEMPTS.

A row is sent inside the transaction that locks it (FOR UPDATE SKIP LOCKED), so a crash
before its commit leaves it due again: nothing is lost across a restart (a receiver may, at
worst, hear a message twice). Secrets are read from the receiver's current configuration at
send time and kept out of the row, the logs and `last_error`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx2 as httpx  # httpx2: the maintained httpx line (starlette needs it too)
import psycopg
from psycopg.types.json import Jsonb

from caretaker.backoff import backoff
from caretaker.db import connect
from caretaker.settings import Settings, get_settings
from tickets import channels
from tickets.messages import Message, compose, place_of
from tickets.notification_policy import (
    NotificationsSpec,
    Target,
    load_spec,
    secrets_of,
    url_secrets,
)
from tickets.policy import load_policy

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0  # seconds; doubles per failed attempt
BACKOFF_MAX = 300.0
BUDGET = 1.5  # seconds one delivery run may spend before yielding to the other jobs


def enqueue(conn: psycopg.Connection[Any], *, site_id: str | None, subject: str, event: str,
            target: Target, payload: dict[str, Any], now: datetime) -> None:
    """Queue one notification for one receiver (in the caller's transaction)."""
    conn.execute(
        "INSERT INTO notification_outbox (site_id, subject, event, channel, receiver, target,"
        " payload, created_at, next_attempt) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (site_id, subject, event, target.channel, target.receiver, target.target,
         Jsonb(payload), now, now))


class _Receivers:
    """Each site's receivers, read once per delivery run (for secrets and SMTP settings)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.specs: dict[str, NotificationsSpec] = {}

    def get(self, site_id: str | None, name: str | None) -> Any:
        if site_id is None or name is None:
            return None
        if site_id not in self.specs:
            try:
                self.specs[site_id] = load_spec(self.conn, site_id)
            except Exception:  # a stored section that no longer validates: send without it
                log.exception("notifications of site %s cannot be read", site_id)
                self.specs[site_id] = NotificationsSpec()
        return self.specs[site_id].receiver(name)


def send(row: dict[str, Any], receiver: Any, settings: Settings, http: httpx.Client, *,
         now: datetime) -> str | None:
    """Send one outbox row over its channel; None when delivered, else what went wrong."""
    channel, target, payload = row["channel"], row["target"], row["payload"]
    message = Message.from_json(payload)
    if channel == "webhook":
        return channels.post_json(http, target, payload, robot=False)
    if channel == "wecom":
        return channels.post_json(http, target, channels.wecom_body(message), robot=True)
    if channel == "dingtalk":
        secret = getattr(receiver, "secret", None)
        url = channels.dingtalk_url(target, secret.get_secret_value() if secret else None,
                                    int(now.timestamp() * 1000))
        return channels.post_json(http, url, channels.dingtalk_body(message), robot=True)
    if channel == "email":
        password = getattr(receiver, "password", None) or settings.smtp_password
        smtp = channels.Smtp(
            host=getattr(receiver, "host", None) or settings.smtp_host,
            port=getattr(receiver, "port", None) or settings.smtp_port,
            starttls=_first(getattr(receiver, "starttls", None), settings.smtp_starttls),
            username=getattr(receiver, "username", None) or settings.smtp_username,
            password=password.get_secret_value() if password else None)
        sender = getattr(receiver, "sender", None) or settings.smtp_from
        to = [a.strip() for a in target.split(",") if a.strip()]
        return channels.send_email(smtp, channels.email_message(message, sender=sender, to=to))
    return f"unknown channel {channel!r}"


def _first(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def secrets(row: dict[str, Any], receiver: Any, settings: Settings) -> list[str]:
    """What must not appear in an error: the receiver's secrets, the URL's key and password."""
    out = secrets_of(receiver) if receiver is not None else []
    if row["channel"] != "email":
        out += url_secrets(row["target"])
    if settings.smtp_password is not None:
        out.append(settings.smtp_password.get_secret_value())
    return out


def deliver_due(conn: psycopg.Connection[Any], now: datetime, *, limit: int = 20,
                client: httpx.Client | None = None, settings: Settings | None = None) -> int:
    """Send the due outbox rows; reschedule failures with back-off. Returns how many were sent."""
    settings = settings or get_settings()
    rows = conn.execute(
        "SELECT * FROM notification_outbox"
        " WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt <= %s"
        " ORDER BY next_attempt, id LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
    if not rows:
        return 0
    sent = 0
    started = time.monotonic()
    own = client is None
    http = client or httpx.Client(timeout=channels.SEND_TIMEOUT)
    receivers = _Receivers(conn)
    try:
        for found in rows:
            if time.monotonic() - started > BUDGET:
                break
            row = dict(found)
            receiver = receivers.get(row["site_id"], row["receiver"])
            try:
                error = send(row, receiver, settings, http, now=now)
            except Exception as exc:  # a bug in one channel must not stop the others
                error = f"{type(exc).__name__}: {exc}"[:500]
            if error is not None:
                error = channels.redact(error, secrets(row, receiver, settings))
            if _record(conn, row, error, now=now, max_attempts=settings.notify_max_attempts):
                sent += 1
    finally:
        if own:
            http.close()
    return sent


def _record(conn: psycopg.Connection[Any], row: dict[str, Any], error: str | None, *,
            now: datetime, max_attempts: int) -> bool:
    """Write the outcome of one attempt; True when it was delivered."""
    attempts = row["attempts"] + 1
    if error is None:
        conn.execute("UPDATE notification_outbox SET attempts = %s, delivered_at = %s,"
                     " last_error = NULL WHERE id = %s", (attempts, now, row["id"]))
        return True
    who = row["receiver"] or "webhook"
    if attempts >= max_attempts:
        log.warning("notification %s to %s (%s) given up after %d attempts: %s", row["id"],
                    who, row["channel"], attempts, error)
        conn.execute("UPDATE notification_outbox SET attempts = %s, failed_at = %s,"
                     " last_error = %s WHERE id = %s", (attempts, now, error, row["id"]))
        return False
    log.info("notification %s to %s (%s) failed (attempt %d): %s", row["id"], who,
             row["channel"], attempts, error)
    retry = now + timedelta(seconds=backoff(attempts, first=BACKOFF_FIRST, cap=BACKOFF_MAX))
    conn.execute("UPDATE notification_outbox SET attempts = %s, next_attempt = %s,"
                 " last_error = %s WHERE id = %s", (attempts, retry, error, row["id"]))
    return False


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
                deliver_due(conn, now, settings=settings)
        except Exception:
            log.exception("notification delivery failed; retrying on the next run")
        finally:
            running.release()

    def job(conn: psycopg.Connection[Any], now: datetime) -> threading.Thread | None:
        due = conn.execute("SELECT EXISTS (SELECT 1 FROM notification_outbox WHERE delivered_at"
                           " IS NULL AND failed_at IS NULL AND next_attempt <= %s) AS due",
                           (now,)).fetchone()
        if not due or not due["due"]:
            return None
        if not running.acquire(blocking=False):
            return None  # the previous delivery is still under way
        thread = threading.Thread(target=work, args=(now,), name="notifications", daemon=True)
        thread.start()
        return thread

    return job


def send_test(conn: psycopg.Connection[Any], site_id: str, *, now: datetime,
              settings: Settings | None = None, only: str | None = None
              ) -> list[tuple[str, str, str | None]]:
    """Send one test message now to each of a site's receivers (and its generic webhook);
    (receiver, channel, None or what went wrong) for each. Nothing is queued."""
    settings = settings or get_settings()
    spec = load_spec(conn, site_id)
    policy = load_policy(conn, site_id)
    targets = [Target(r.name, r.channel, r.target()) for r in spec.receivers
               if r.enabled and only in (None, r.name)]
    legacy = policy.webhook_url or settings.webhook_url
    if legacy and only in (None, "webhook"):
        targets.append(Target(None, "webhook", legacy))
    message = compose(subject="site", event="test", record={},
                      place=place_of(conn, site_id, {}), language=spec.language,
                      base=settings.link_base(),
                      extra={"path": f"/api/v1/sites/{site_id}/escalation"})
    payload = {"event": "test", "at": now.isoformat(), "site": site_id, **message.jsonable()}
    out: list[tuple[str, str, str | None]] = []
    with httpx.Client(timeout=channels.SEND_TIMEOUT) as http:
        for t in targets:
            receiver = spec.receiver(t.receiver)
            row = {"channel": t.channel, "target": t.target, "payload": payload}
            error = send(row, receiver, settings, http, now=now)
            if error is not None:
                error = channels.redact(error, secrets(row, receiver, settings))
            out.append((t.receiver or "webhook", t.channel, error))
    return out
