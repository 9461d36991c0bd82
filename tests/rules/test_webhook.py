"""The work-order policy's webhook (the generic JSON one, as before the notification channels)
against a real local HTTP server that fails before it succeeds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from caretaker.settings import Settings
from tests.rules.helpers import at, make_site, publish, rows, run
from tickets import outbox
from tickets.escalation import escalate_due
from tickets.work_orders import transition

MAX_ATTEMPTS = Settings().notify_max_attempts


class Receiver:
    """A local HTTP server that answers 503 to the first `fail` POSTs, then 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if outer.attempts <= outer.fail:
                    self.send_response(503)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(fail=2) as r:
        yield r


def test_webhook_retried_with_backoff_until_delivered(conn: psycopg.Connection,
                                                      receiver: Receiver) -> None:
    make_site(conn, policy={"webhook": {"url": receiver.url}})
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))
    [queued] = rows(conn, "SELECT * FROM notification_outbox")
    assert queued["event"] == "opened"
    assert outbox.deliver_due(conn, at(1)) == 0  # 503
    [row] = rows(conn, "SELECT * FROM notification_outbox")
    assert row["attempts"] == 1 and row["next_attempt"] == at(2) and "503" in row["last_error"]
    assert outbox.deliver_due(conn, at(1.5)) == 0  # not due yet: nothing sent
    assert receiver.attempts == 1
    assert outbox.deliver_due(conn, at(2)) == 0  # 503 again; back-off doubles
    assert rows(conn, "SELECT next_attempt FROM notification_outbox")[0]["next_attempt"] == at(4)
    assert outbox.deliver_due(conn, at(4)) == 1
    assert receiver.attempts == 3
    [body] = receiver.received
    assert body["event"] == "work_order.opened"
    assert body["work_order"]["device_id"] == "pump-1"
    assert rows(conn, "SELECT delivered_at FROM notification_outbox")[0]["delivered_at"] == at(4)


def test_escalated_and_closed_are_sent_too(conn: psycopg.Connection) -> None:
    with Receiver(fail=0) as receiver:
        make_site(conn, policy={"webhook": {"url": receiver.url}})
        publish(conn, "pump-1", at(0), vibration=9)
        run(conn, at(1))
        escalate_due(conn, at(31 * 60))
        [wo] = rows(conn, "SELECT id FROM work_orders")
        transition(conn, wo["id"], "acknowledge", actor="e", now=at(2000))
        transition(conn, wo["id"], "start", actor="e", now=at(2001))
        transition(conn, wo["id"], "resolve", actor="e", now=at(2002))
        transition(conn, wo["id"], "close", actor="s", now=at(2003))
        assert outbox.deliver_due(conn, at(2004)) == 3
        assert [b["event"] for b in receiver.received] == [
            "work_order.opened", "work_order.escalated", "work_order.closed"]


def test_unreachable_receiver_gives_up_after_max_attempts(conn: psycopg.Connection) -> None:
    make_site(conn, policy={"webhook": {"url": "http://127.0.0.1:9/nothing"}})
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))
    when = at(1)
    for _ in range(MAX_ATTEMPTS):
        outbox.deliver_due(conn, when)
        when = at(10**6) if when == at(1) else when.replace(year=when.year + 1)
    [row] = rows(conn, "SELECT * FROM notification_outbox")
    assert row["failed_at"] is not None and row["attempts"] == MAX_ATTEMPTS


def test_worker_job_delivers_in_its_own_thread(conn: psycopg.Connection, database: str) -> None:
    with Receiver(fail=0) as receiver:
        make_site(conn, policy={"webhook": {"url": receiver.url}})
        publish(conn, "pump-1", at(0), vibration=9)
        run(conn, at(1))
        job = outbox.delivery_job(Settings(database_url=database))
        thread = job(conn, at(2))
        assert thread is not None
        thread.join(10)
        assert [b["event"] for b in receiver.received] == ["work_order.opened"]
        conn.rollback()
        [row] = rows(conn, "SELECT delivered_at FROM notification_outbox")
        assert row["delivered_at"] == at(2)
