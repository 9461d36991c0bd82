"""The rules worker process: runs the composition root's jobs until it is told to stop."""

from __future__ import annotations

import logging
import signal
import threading

from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.scheduler import run_forever
from caretaker.settings import Settings, get_settings
from stack.app import worker_jobs

log = logging.getLogger(__name__)


def run_rules(settings: Settings | None = None, *, clock: Clock = system_clock,
              stop: threading.Event | None = None) -> None:
    """Run the rules worker until SIGTERM/SIGINT (or `stop` is set)."""
    settings = settings or get_settings()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    pool = make_pool(settings, name="rules", max_size=4)
    log.info("rules worker started")
    try:
        run_forever(pool, worker_jobs(settings), clock, stop)
    finally:
        pool.close()
