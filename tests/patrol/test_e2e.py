"""End to end: simulated guards publish over the real broker, the real ingest stores the
scans, the patrol jobs of the rules worker check them on a fake clock, the API shows gaps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.db import make_pool
from caretaker.scheduler import run_job_once
from caretaker.settings import Settings
from caretaker.site_config import example_document
from rules.patrol.engine import patrol_jobs
from simulators.guards import Plan, Rates, plan_scans
from simulators.stream import scans_as_events
from stack.app import load_site
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    Publisher,
    forget_session,
    ingest_settings,
    running_worker,
    wait_until,
)
from tests.patrol.helpers import value
from tests.patrol.oracle import Gap, expected_gaps

pytestmark = pytest.mark.e2e

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)   # Sunday 20:00 in Shanghai
END = START + timedelta(hours=19)                    # Monday 15:00 in Shanghai
RATES = Rates(missed=0.12, late=0.12, out_of_order=0.2, repeated=0.1, offline_batch=0.2,
              missed_run=0.05, abnormal=0.2)


def riverside(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = example_document()
    for s in doc["schedules"]:
        s["effective_from"] = "2026-11-22"
    load_site(conn, doc, now=now)
    conn.commit()
    return doc


def api_gaps(client: TestClient, headers: dict[str, str]) -> set[Gap]:
    items = client.get("/api/v1/gaps?site=riverside&limit=1000", headers=headers).json()["items"]
    out = set()
    for g in items:
        run = client.get(f"/api/v1/runs/{g['run_id']}", headers=headers).json()
        start = datetime.fromisoformat(run["planned_start"])
        if not START <= start < END:
            continue    # runs outside the simulated span had nobody walking them
        out.add((g["schedule_id"], start, g["kind"], g["checkpoint_id"],
                 datetime.fromisoformat(g["window_start"]), g["status"], g["resolution"]))
    return out


@contextmanager
def ingest(database: str, mqtt: Broker) -> Iterator[None]:
    settings = ingest_settings(database, mqtt)
    try:
        with running_worker(settings):
            yield
    finally:
        forget_session(settings)


def scans_stored(conn: psycopg.Connection[Any]) -> int:
    conn.commit()
    return int(value(conn, "SELECT count(*) AS n FROM scans"))


def stored_is(conn: psycopg.Connection[Any], n: int) -> bool:
    return scans_stored(conn) == n


def plan(doc: dict[str, Any], seed: int) -> Plan:
    p = plan_scans(doc, start=START, end=END, seed=seed, rates=RATES)
    kinds = {i.kind for i in p.injected}
    assert {"missed", "late", "offline_batch", "missed_run"} <= kinds, kinds
    return p


def test_live_guards_gaps_within_seconds(database: str, mqtt: Broker,
                                         conn: psycopg.Connection[Any], client: TestClient,
                                         admin: dict[str, str]) -> None:
    clock = FakeClock(START - timedelta(minutes=5))
    doc = riverside(conn, clock())
    p = plan(doc, seed=11)
    events = scans_as_events("riverside", p)
    settings = Settings(database_url=database)
    jobs = patrol_jobs(settings)
    pool = make_pool(settings, max_size=2)
    sent = 0

    def check() -> None:
        for job in jobs:
            assert run_job_once(pool, job, clock)

    try:
        with ingest(database, mqtt):
            pub = Publisher(mqtt)
            check()
            stop = END + timedelta(hours=2)
            i = 0
            while clock() < stop:
                conn.commit()
                due = value(conn, "SELECT min(next_check_at) FROM patrol_runs"
                            " WHERE next_check_at > %s", (clock(),))
                publish_at = (datetime.fromtimestamp(events[i].time, UTC)
                              if i < len(events) else None)
                if publish_at is not None and (due is None or publish_at <= due):
                    clock.set(max(clock(), publish_at))
                    pub.publish(events[i].topic, events[i].payload)
                    sent += events[i].payload.count(b'"scan_id"')
                    assert wait_until(partial(stored_is, conn, sent))
                    i += 1
                elif due is not None:
                    clock.set(min(due, stop))
                else:
                    clock.set(stop)
                check()
            pub.close()
    finally:
        pool.close()

    want = expected_gaps(p, live=True)
    assert want, "the plan injected nothing"
    assert api_gaps(client, admin) == want
    # raised by the clock within 5 s of the window closing (for a run walked offline:
    # of its batch arriving, as nothing of it was known before)
    synced = {(r.schedule_id, r.start): r.synced_at for r in p.runs if r.offline}
    rows = conn.execute(
        "SELECT g.kind, g.window_end, g.detected_at, g.schedule_id, r.planned_start"
        " FROM inspection_gaps g JOIN patrol_runs r ON r.id = g.run_id"
        " WHERE g.kind IN ('missed_checkpoint', 'overdue_inspection', 'missed_run')"
        " AND g.status = 'open' AND r.planned_start >= %s AND r.planned_start < %s",
        (START, END)).fetchall()
    assert rows
    for r in rows:
        known = max(r["window_end"], synced.get((r["schedule_id"], r["planned_start"]))
                    or r["window_end"])
        assert r["detected_at"] - known <= timedelta(seconds=5), r
    findings = value(conn, "SELECT count(*) AS n FROM inspection_findings")
    assert findings == sum(1 for i in p.injected if i.kind == "abnormal")
    repeats = value(conn, "SELECT count(*) AS n FROM scan_checks WHERE disposition = 'repeat'"
                           )
    assert repeats == sum(1 for s in p if s.repeat)


def test_backfilled_history_gives_the_same_gaps(database: str, mqtt: Broker,
                                                conn: psycopg.Connection[Any], client: TestClient,
                                                admin: dict[str, str]) -> None:
    doc = riverside(conn, START)
    p = plan(doc, seed=11)
    events = scans_as_events("riverside", p)
    with ingest(database, mqtt):
        pub = Publisher(mqtt)
        for e in events:
            pub.publish(e.topic, e.payload)
        pub.close()
        assert wait_until(lambda: scans_stored(conn) == len(p))
    settings = Settings(database_url=database)
    pool = make_pool(settings, max_size=2)
    clock = FakeClock(END + timedelta(hours=2))
    try:
        for _ in range(20):     # the worker comes up after the history is in
            for job in patrol_jobs(settings):
                run_job_once(pool, job, clock)
            clock.advance(seconds=0.5)
    finally:
        pool.close()
    assert api_gaps(client, admin) == expected_gaps(p, live=False)
