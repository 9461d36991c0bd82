"""The scheduler: one holder per job (advisory lock), and jobs woken by the ingest's NOTIFY."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from caretaker.clock import system_clock
from caretaker.db import make_pool
from caretaker.locks import lock_key
from caretaker.migrations import LOCK_KEY
from caretaker.scheduler import CHANNEL, Job, run_forever, run_job_once
from caretaker.settings import Settings
from tests.waiting import wait_until


@pytest.fixture
def pool(database: str) -> Iterator[ConnectionPool]:
    p = make_pool(Settings(database_url=database), max_size=4)
    yield p
    p.close()


class Runs:
    """Counts a job's runs."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, conn: psycopg.Connection[Any], now: datetime) -> None:
        self.n += 1


def notify(database: str, kind: str) -> None:
    """What the ingest does after a committed batch."""
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind))


def test_the_lock_keys_come_from_the_one_function() -> None:
    assert Job("x", 1.0, Runs()).lock_key == lock_key("job", "x")
    assert LOCK_KEY == lock_key("migrations")
    assert len({lock_key("job", "x"), lock_key("job", "y"), lock_key("migrations")}) == 3


def test_a_job_another_process_runs_is_skipped(pool: ConnectionPool, database: str) -> None:
    fn = Runs()
    job = Job("held", 1.0, fn)
    with psycopg.connect(database) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (job.lock_key,))
        assert run_job_once(pool, job, system_clock) is False
        assert fn.n == 0
    assert run_job_once(pool, job, system_clock) is True
    assert fn.n == 1


def test_a_notify_wakes_the_jobs_of_its_kind_only(pool: ConnectionPool, database: str) -> None:
    telemetry, scans, clock_only = Runs(), Runs(), Runs()
    jobs = [Job("inbox", 60.0, telemetry, wakes_on=("telemetry", "status")),
            Job("scans", 60.0, scans, wakes_on=("scans",)),
            Job("clock", 60.0, clock_only)]
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(pool, jobs, system_clock, stop))
    worker.start()
    try:
        wait_until(lambda: telemetry.n == scans.n == clock_only.n == 1, 10, "the first runs")
        listening = "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
        with psycopg.connect(database, autocommit=True) as c:
            wait_until(lambda: c.execute(listening).fetchone()[0] == 1,  # type: ignore[index]
                       10, "the scheduler to listen")
            notify(database, "status")
            wait_until(lambda: telemetry.n == 2, 5, "the inbox job to wake")
            assert scans.n == 1 and clock_only.n == 1  # their intervals (60 s) are far off
            # the listening connection is lost: the scheduler listens again, after a back-off,
            # and then runs every job that listens once (a notify may have come meanwhile)
            lost = [r[0] for r in c.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()").fetchall()]
            assert len(lost) == 1
            c.execute("SELECT pg_terminate_backend(%s)", (lost[0],))
            # a new backend listening (the terminated one can linger in pg_stat_activity)
            again = ("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
                     " AND pid <> %s")
            wait_until(lambda: c.execute(again, (lost[0],)).fetchone()[0] == 1,  # type: ignore[index]
                       10, "the scheduler to listen again")
        wait_until(lambda: telemetry.n == 3 and scans.n == 2, 10,
                   "the listening jobs to run once after listening again")
        assert clock_only.n == 1
        notify(database, "scans")
        wait_until(lambda: scans.n == 3, 5, "the scans job to wake")
        assert telemetry.n == 3 and clock_only.n == 1
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
