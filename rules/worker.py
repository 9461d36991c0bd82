"""The rules worker process: every clock-driven and ingest-fed job of the platform."""

from __future__ import annotations

import logging
import signal
import threading

from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.retention import apply_retention
from caretaker.scheduler import Job, run_forever
from caretaker.settings import Settings, get_settings
from rules.engine import rule_jobs
from rules.patrol.engine import patrol_jobs

log = logging.getLogger(__name__)


def jobs(settings: Settings) -> list[Job]:
    """The periodic jobs this worker runs."""
    return [
        Job("retention", 3600, lambda conn, now: apply_retention(
            conn, days=settings.retention_days, now=now)),
        *patrol_jobs(settings),
        *rule_jobs(settings),
    ]


def main(settings: Settings | None = None, *, clock: Clock = system_clock,
         stop: threading.Event | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT (or `stop` is set)."""
    settings = settings or get_settings()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    pool = make_pool(settings, name="rules", max_size=4)
    log.info("rules worker started")
    try:
        run_forever(pool, jobs(settings), clock, stop)
    finally:
        pool.close()
