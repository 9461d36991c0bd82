"""The platform's own scheduler: periodic jobs, each run by one process at a time.

Jobs are guarded by PostgreSQL advisory locks, so any number of workers can run the same
schedule without doing a job twice at once. A job that consumes the ingest outbox names the
outbox kinds it takes (`wakes_on`); the scheduler LISTENs on the channel the ingest NOTIFYs
after each committed batch and runs such a job at once, its interval being only the fallback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from caretaker.backoff import backoff
from caretaker.clock import Clock
from caretaker.locks import lock_key

log = logging.getLogger(__name__)

JobFn = Callable[[psycopg.Connection[Any], datetime], object]

# The ingest NOTIFYs this channel after each committed batch; the payload is an outbox kind.
CHANNEL = "caretaker_events"
ANY_KIND = "*"  # wakes every job that listens (after listening again: missed notifies)
# Longest single wait, so that `stop` is noticed soon even while listening.
MAX_WAIT = 0.5


@dataclass
class Job:
    """A function run every `every` seconds with a connection and the clock's now.

    `wakes_on`: outbox kinds (NOTIFY payloads) after which the job runs at once.
    """

    name: str
    every: float
    fn: JobFn
    wakes_on: tuple[str, ...] = ()
    next_run: float = field(default=0.0, compare=False)

    @property
    def lock_key(self) -> int:
        return lock_key("job", self.name)


def run_job_once(pool: ConnectionPool, job: Job, clock: Clock) -> bool:
    """Run the job in one transaction if no other process is running it; True if it ran."""
    with pool.connection() as conn:
        got = conn.cursor(row_factory=dict_row).execute(
            "SELECT pg_try_advisory_xact_lock(%s) AS ok", (job.lock_key,)).fetchone()
        if not (got and got["ok"]):
            return False
        job.fn(conn, clock())
        return True


class Listener:
    """LISTEN on a connection of its own; after a failure it reconnects with the back-off."""

    def __init__(self, conninfo: str, channel: str = CHANNEL) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.conn: psycopg.Connection[Any] | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.resumed = False  # listening again after a loss: notifies may have been missed

    def _connected(self) -> psycopg.Connection[Any] | None:
        if self.conn is None and time.monotonic() >= self.retry_at:
            try:
                self.conn = psycopg.connect(self.conninfo, autocommit=True)
                self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.resumed = self.failures > 0
                self.failures = 0
            except psycopg.Error as exc:
                self._failed(exc)
        return self.conn

    def _failed(self, exc: Exception) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.failures += 1
        wait = backoff(self.failures)
        self.retry_at = time.monotonic() + wait
        log.warning("cannot listen on %s (%s); polling only, trying again in %.1fs",
                    self.channel, str(exc).strip().splitlines()[0] if str(exc) else "?", wait)

    def wait(self, timeout: float, stop: threading.Event) -> set[str]:
        """The payloads notified within `timeout` (returns at the first); {} when not listening."""
        conn = self._connected()
        if conn is None:
            stop.wait(timeout)
            return set()
        if self.resumed:  # whatever was notified while not listening: every kind, once
            self.resumed = False
            return {ANY_KIND}
        try:
            got = {n.payload for n in conn.notifies(timeout=timeout, stop_after=1)}
            if got:  # whatever else has arrived already
                got |= {n.payload for n in conn.notifies(timeout=0)}
            return got
        except psycopg.Error as exc:
            self._failed(exc)
            return set()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_forever(pool: ConnectionPool, jobs: list[Job], clock: Clock,
                stop: threading.Event) -> None:
    """Run the jobs on their intervals until `stop` is set; a failing job is logged and retried.

    Jobs with `wakes_on` also run as soon as the ingest notifies one of their kinds.
    """
    conninfo = pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()
    listener = Listener(conninfo) if any(job.wakes_on for job in jobs) else None
    try:
        while not stop.is_set():
            now = time.monotonic()
            for job in jobs:
                if now < job.next_run:
                    continue
                job.next_run = now + job.every
                try:
                    run_job_once(pool, job, clock)
                except Exception:
                    log.exception("job %s failed; retrying in %.1fs", job.name, job.every)
            wait = min(job.next_run for job in jobs) - time.monotonic() if jobs else 1.0
            wait = min(max(wait, 0.01), MAX_WAIT)
            if listener is None:
                stop.wait(wait)
            else:
                _wake(jobs, listener.wait(wait, stop))
    finally:
        if listener is not None:
            listener.close()


def _wake(jobs: Iterable[Job], kinds: set[str]) -> None:
    """Make the jobs that take any of these outbox kinds due now."""
    for job in jobs:
        if kinds.intersection(job.wakes_on) or (ANY_KIND in kinds and job.wakes_on):
            job.next_run = 0.0
