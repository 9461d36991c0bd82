"""The platform's own scheduler: periodic jobs, each run by one process at a time.

Jobs are guarded by PostgreSQL advisory locks, so any number of workers can run the same
schedule without doing a job twice at once.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from caretaker.clock import Clock

log = logging.getLogger(__name__)

JobFn = Callable[[psycopg.Connection[Any], datetime], object]


@dataclass
class Job:
    """A function run every `every` seconds with a connection and the clock's now."""

    name: str
    every: float
    fn: JobFn
    next_run: float = field(default=0.0, compare=False)

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"caretaker-job:{self.name}".encode())


def run_job_once(pool: ConnectionPool, job: Job, clock: Clock) -> bool:
    """Run the job in one transaction if no other process is running it; True if it ran."""
    with pool.connection() as conn:
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (job.lock_key,)).fetchone()
        ok = got["ok"] if isinstance(got, dict) else got[0]  # type: ignore[index]
        if not ok:
            return False
        job.fn(conn, clock())
        return True


def run_forever(pool: ConnectionPool, jobs: list[Job], clock: Clock,
                stop: threading.Event) -> None:
    """Run the jobs on their intervals until `stop` is set; a failing job is logged and retried."""
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
        stop.wait(max(wait, 0.01))
