"""The example site with the example guard's rounds around now, and a patrol worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from caretaker.site_config import example_document
from caretaker.users import create_user
from rules.patrol import engine
from rules.patrol.model import route_from_dict
from stack.app import load_site

SITE = "riverside"
GUARD = "g-zhang"          # the example's night patrol guard
USER = "zhang"
PASSWORD = "correct horse battery"
PATROL = "phone-patrol"     # the schedule ids of the two runs planned for the test
ROUND = "phone-round"


def seed(conn: psycopg.Connection[Any], now: datetime) -> dict[str, int]:
    """Riverside loaded; the example guard's user; two runs of theirs under way: the night
    perimeter patrol (started 2 minutes ago: the main gate due now, the next points early)
    and the daily plant inspection (started 30 minutes ago: every point on time). Their ids."""
    doc = example_document()
    load_site(conn, doc, now=now - timedelta(days=2))
    create_user(conn, USER, PASSWORD, role="guard", site_id=SITE, guard_id=GUARD)
    routes = {r["id"]: route_from_dict(r) for r in doc["routes"]}
    equipment = {c["id"] for c in doc["checkpoints"] if c.get("kind") == "equipment"}
    runs = {}
    for schedule, route, start in ((PATROL, "night-perimeter", now - timedelta(minutes=2)),
                                   (ROUND, "equipment-daily", now - timedelta(minutes=30))):
        run = engine.plan_run(conn, site_id=SITE, schedule_id=schedule, route=routes[route],
                              guard_id=GUARD, post=None, planned_start=start,
                              start_tolerance=None, equipment=equipment,
                              settle=timedelta(seconds=2))
        assert run is not None
        runs[route] = run
    conn.commit()
    return runs


@contextmanager
def patrol_worker(database: str, clock: Any) -> Iterator[None]:
    """The patrol worker's scan job (as `caretaker rules` runs it) in a thread, every 0.2 s."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def work() -> None:
        with psycopg.connect(database, row_factory=dict_row) as conn:
            while not stop.is_set():
                try:
                    engine.consume_scans(conn, clock())
                    conn.commit()
                except BaseException as exc:  # reported by the test, not lost in the thread
                    failures.append(exc)
                    return
                stop.wait(0.2)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures, failures
