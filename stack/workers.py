"""The worker processes: the rules worker, and the ingest's several workers under one supervisor."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from caretaker.clock import Clock, system_clock
from caretaker.db import make_pool
from caretaker.scheduler import run_forever
from caretaker.settings import Settings, get_settings
from caretaker.supervisor import Child, Supervisor
from ingest.worker import main as run_ingest_worker
from stack.app import ingest_event_metrics, worker_jobs

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


def caretaker_argv(*args: str) -> list[str]:
    """The command line of a `caretaker <args>` process run by this interpreter."""
    return [sys.executable, "-m", "stack.cli", *args]


def run_ingest(settings: Settings | None = None, *, index: int = 0,
               stop: threading.Event | None = None) -> None:
    """Run one ingest worker; its outbox events are for the metrics the rules watch."""
    run_ingest_worker(settings, index=index, stop=stop, event_metrics=ingest_event_metrics())


def supervise_ingest(workers: int, settings: Settings | None = None) -> None:
    """Run `workers` ingest processes sharing the topics; restart any that dies, with back-off."""
    settings = settings or get_settings()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logs = settings.state_dir / "logs"
    children = [Child(f"ingest-{i}", caretaker_argv("ingest", "--index", str(i)),
                      logs / f"ingest-{i}.log") for i in range(workers)]
    env = {**os.environ, "CARETAKER_INGEST_WORKERS": str(workers)}
    supervisor = Supervisor(children, env)
    supervisor.start_all()
    log.info("started %d ingest workers (logs in %s)", workers, logs)
    try:
        while not stop.wait(0.5):
            supervisor.poll()
    finally:
        supervisor.stop_all()
