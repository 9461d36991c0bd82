"""End to end on the example site: a forced door over the real broker and ingest sends the
nearest on-duty guard (a real HTTP receiver plays their handheld), the guard's scan records
the result on the alarm, and a second forced door nobody verifies escalates."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from caretaker.clock import FakeClock
from caretaker.db import make_pool
from caretaker.scheduler import Job, run_job_once
from caretaker.settings import Settings
from caretaker.site_config import example_document
from stack.app import load_site, worker_jobs
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    Publisher,
    forget_session,
    ingest_settings,
    running_worker,
    wait_until,
)
from tests.tickets.notify_helpers import HttpReceiver
from tickets.outbox import deliver_due

pytestmark = pytest.mark.e2e

# Monday 23 Nov 2026, 13:00 in Shanghai: the day patrol (g-li) and the gate post's hourly
# check (g-wang) are both under way.
RUNS = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
SITE = "riverside"
JOBS = ("patrol-clock", "patrol-scans", "rules-inbox", "rules-clock", "verification-escalation")


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    conn.commit()
    return [dict(r) for r in conn.execute(query, params)]  # type: ignore[arg-type]


@contextmanager
def ingest(database: str, mqtt: Broker) -> Iterator[None]:
    settings = ingest_settings(database, mqtt)
    try:
        with running_worker(settings):
            yield
    finally:
        forget_session(settings)


def scan(pub: Publisher, guard: str, tag: str, when: datetime, result: str = "ok",
         note: str | None = None) -> None:
    payload: dict[str, Any] = {"scan_id": str(uuid.uuid4()), "tag": tag,
                               "ts": int(when.timestamp() * 1000), "result": result}
    if note:
        payload["note"] = note
    pub.publish(f"caretaker/v1/{SITE}/guards/{guard}/scans", json.dumps(payload))


def door(pub: Publisher, forced: int, when: datetime) -> None:
    pub.publish(f"caretaker/v1/{SITE}/devices/door-pump-room/telemetry",
                json.dumps({"ts": int(when.timestamp() * 1000), "values": {"forced": forced}}))


def test_a_forced_door_sends_the_nearest_guard_whose_scan_records_the_result(
        database: str, mqtt: Broker, conn: psycopg.Connection[Any]) -> None:
    clock = FakeClock(RUNS - timedelta(minutes=30))
    settings = Settings(database_url=database)
    jobs: list[Job] = [j for j in worker_jobs(settings) if j.name in JOBS]
    assert {j.name for j in jobs} == set(JOBS)
    pool = make_pool(settings, max_size=2)

    def work() -> None:
        for job in jobs:
            assert run_job_once(pool, job, clock)

    def deliver() -> int:
        with pool.connection() as c, httpx.Client() as http:
            return deliver_due(c, clock(), client=http)

    with HttpReceiver() as handhelds, HttpReceiver() as supervisor, ingest(database, mqtt):
        doc = example_document()
        for s in doc["schedules"]:
            s["effective_from"] = "2026-11-22"
        doc["notifications"]["receivers"] = [
            {"name": "guard-handhelds", "channel": "webhook", "url": handhelds.url,
             "subjects": ["verification"], "audiences": ["g-wang", "g-li"]},
            {"name": "security-supervisor", "channel": "webhook", "url": supervisor.url,
             "subjects": ["verification"], "audiences": ["security_supervisor"]}]
        load_site(conn, doc, now=clock())
        conn.commit()
        pub = Publisher(mqtt)
        try:
            work()
            # g-li starts the day patrol at Tower A's lobby; g-wang checks in at the main gate
            clock.set(RUNS + timedelta(minutes=8))
            scan(pub, "g-li", "NFC-RS-0005", RUNS + timedelta(minutes=1))
            scan(pub, "g-wang", "NFC-RS-0001", RUNS + timedelta(minutes=7))
            assert wait_until(lambda: len(rows(conn, "SELECT 1 FROM scans")) == 2)
            work()
            # the pump room's door is forced
            clock.set(RUNS + timedelta(minutes=9))
            door(pub, 1, clock())
            assert wait_until(lambda: bool(rows(conn, "SELECT 1 FROM ingest_events"
                                                      " WHERE kind = 'telemetry'")))
            work()
            [ver] = rows(conn, "SELECT * FROM verifications")
            # gate -> B1 ramp -> pump room door: 60 + 110 m; Tower A lobby via Tower B, Tower C
            # and the B2 stairs: 80 + 80 + 70 + 40 m
            assert (ver["guard_id"], ver["checkpoint_id"], ver["from_checkpoint"],
                    ver["distance"], ver["basis"], ver["state"]) == (
                "g-wang", "cp-pump-room-door", "cp-gate-main", 170, "distances", "open")
            [run] = rows(conn, "SELECT schedule_id FROM patrol_runs WHERE id = %s",
                         ver["run_id"])
            assert run["schedule_id"] == "gate-hourly"
            assert ver["due_by"] == clock() + timedelta(minutes=10)
            [alarm] = rows(conn, "SELECT * FROM alarms")
            assert (alarm["id"], alarm["verification"], alarm["work_order_id"]) == (
                ver["alarm_id"], "open", None)  # a warning: the look decides on a ticket
            # the guard's handheld hears of it (and nobody else's receiver does)
            assert deliver() >= 1
            assert wait_until(lambda: len(handhelds.received) == 1)
            body = handhelds.received[0].body
            assert body["event"] == "verification.opened"
            assert body["verification"]["guard_id"] == "g-wang"
            assert "水泵房门" in body["title"] and supervisor.received == []

            # g-wang walks there and finds the door shut and sound: a false alarm
            clock.set(RUNS + timedelta(minutes=13))
            scan(pub, "g-wang", "NFC-RS-0011", clock(), note="门已关好，无异常")
            assert wait_until(lambda: len(rows(conn, "SELECT 1 FROM scans")) == 3)
            work()
            [ver] = rows(conn, "SELECT * FROM verifications")
            assert (ver["state"], ver["result_by"], ver["note"]) == (
                "false_alarm", "guard:g-wang", "门已关好，无异常")
            [alarm] = rows(conn, "SELECT * FROM alarms")
            assert alarm["verification"] == "false_alarm"
            history = [h["action"] for h in rows(
                conn, "SELECT action FROM alarm_history WHERE alarm_id = %s ORDER BY id",
                alarm["id"])]
            assert history == ["raised", "verification_requested", "verified_false_alarm"]
            [check] = rows(conn, "SELECT disposition FROM scan_checks WHERE checkpoint_id ="
                                 " 'cp-pump-room-door'")
            assert check["disposition"] == "verification"
            assert rows(conn, "SELECT 1 FROM work_orders") == []

            # the door closes (the alarm clears), then is forced again; nobody comes
            clock.set(RUNS + timedelta(minutes=14))
            door(pub, 0, clock())
            assert wait_until(lambda: bool(rows(conn, "SELECT 1 FROM ingest_events"
                                                      " WHERE kind = 'telemetry'")))
            work()
            clock.set(RUNS + timedelta(minutes=15))
            door(pub, 1, clock())
            assert wait_until(lambda: bool(rows(conn, "SELECT 1 FROM ingest_events"
                                                      " WHERE kind = 'telemetry'")))
            work()
            second = rows(conn, "SELECT * FROM verifications WHERE state = 'open'")
            assert [v["guard_id"] for v in second] == ["g-wang"]  # still the nearest
            clock.set(second[0]["due_by"] - timedelta(seconds=1))
            work()
            assert rows(conn, "SELECT state FROM verifications WHERE id = %s",
                        second[0]["id"]) == [{"state": "open"}]
            clock.set(second[0]["due_by"])
            work()
            work()  # exactly once, however often the clock runs
            [ver] = rows(conn, "SELECT * FROM verifications WHERE id = %s", second[0]["id"])
            assert ver["state"] == "not_verified" and ver["work_order_id"] is not None
            [wo] = rows(conn, "SELECT * FROM work_orders")
            assert (wo["id"], wo["source"], wo["severity"], wo["alarm_id"]) == (
                ver["work_order_id"], "verification", "major", ver["alarm_id"])
            [alarm] = rows(conn, "SELECT * FROM alarms WHERE id = %s", ver["alarm_id"])
            assert (alarm["verification"], alarm["work_order_id"]) == ("not_verified", wo["id"])
            assert deliver() >= 1
            assert wait_until(lambda: len(supervisor.received) == 1)
            assert supervisor.received[0].body["event"] == "verification.overdue"
            assert supervisor.received[0].body["verification"]["state"] == "not_verified"
            pub.close()
        finally:
            pool.close()
