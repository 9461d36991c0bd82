"""The ingest worker: batches messages from the subscriber, commits them, then acknowledges.

A batch closes at `ingest_batch_size` messages, or when its window has passed since the
previous batch closed: `ingest_batch_ms` for a busy stream, longer (up to 4x) for a thinner
one so batches stay about the same size (ingest/batch.py Pace); a pause in the stream no
longer closes it (that made a bursty thin stream's batches small). The collector looks at the
inbox every TICK rather than waking for each message.
While the database is unreachable the batch is retried with back-off and nothing is
acknowledged; the broker stops sending once its in-flight window is full, and the subscriber
stops reading once the messages held pass `ingest_max_pending_bytes`, so memory stays
bounded (in messages and bytes) and the backlog waits at the broker.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from typing import Any

import psycopg
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from caretaker import db
from caretaker.settings import Settings, get_settings
from ingest.batch import Batch, DeadLetter, Message, Pace, assemble
from ingest.metrics import WorkerStats
from ingest.mqtt import Received, Subscriber, wall_ms
from ingest.store import (
    EventMetrics,
    MetricsProvider,
    SeriesIds,
    Written,
    copy_text,
    store_dead_letters,
    write_batch,
)

log = logging.getLogger(__name__)

TICK = 0.005  # how often a batch being gathered takes what has arrived
# A batch aims at what a busy stream (5,000 msg/s: the rate the p99 latency is held at)
# brings in ingest_batch_ms: 150 messages at the default 30 ms.
BUSY_RATE = 5000
MAX_WINDOW = 4  # the longest window, in multiples of ingest_batch_ms
STATS_EVERY = 1.0
LOG_EVERY = 30.0
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class Stopped(Exception):
    """The worker was asked to stop while a batch was still uncommitted."""


class IngestWorker:
    """One ingest process's loop: collect a batch, write it in one transaction, acknowledge."""

    def __init__(self, settings: Settings, *, index: int = 0,
                 stop: threading.Event | None = None,
                 event_metrics: MetricsProvider | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.client_id = f"{settings.ingest_client_id}-{index}"
        shared = settings.ingest_workers > 1
        self.subscriber = Subscriber(settings.mqtt_login(self.client_id),
                                     client_id=self.client_id,
                                     group=settings.ingest_share_group if shared else None,
                                     stale_group=settings.ingest_share_group,
                                     receive_maximum=settings.ingest_max_pending,
                                     max_bytes=settings.ingest_max_pending_bytes)
        self.stats = WorkerStats(self.client_id)
        self.event_metrics = EventMetrics(event_metrics)
        self.series = SeriesIds()
        least = settings.ingest_batch_ms / 1000
        self.pace = Pace(least=least, most=least * MAX_WINDOW,
                         target=max(1, round(BUSY_RATE * least)))
        self._closed_at = time.monotonic()
        self._conn: psycopg.Connection[Any] | None = None
        self._totals = {"messages": 0, "rows": 0, "dead": 0}
        self._parsed: queue.Queue[tuple[list[Received], Batch]] = queue.Queue(maxsize=2)
        self._parsing_done = threading.Event()
        self._failure: BaseException | None = None

    def run(self) -> None:
        """Run until `stop` is set; uncommitted messages stay unacknowledged at the broker.

        Two stages overlap: this thread collects and parses batch N+1 while the writer
        thread writes, commits and acknowledges batch N (psycopg releases the GIL while the
        database works). At most two parsed batches wait for the writer.
        """
        self.subscriber.start()
        log.info("ingest worker %s started (batch %d msgs / %d ms)", self.client_id,
                 self.settings.ingest_batch_size, self.settings.ingest_batch_ms)
        writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        writer.start()
        try:
            while not self.stop.is_set() and writer.is_alive():
                items = self._collect()
                if not items:
                    continue
                batch = assemble([it.message for it in items])
                # from committed series ids only (None if one is new: the writer resolves it)
                batch.copy_data = copy_text(batch.telemetry, self.series.known)
                while not self.stop.is_set() and writer.is_alive():
                    try:
                        self._parsed.put((items, batch), timeout=0.2)
                        break
                    except queue.Full:
                        continue
        finally:
            self._parsing_done.set()
            writer.join()
            self._flush_stats()
            self.subscriber.stop()
            if self._conn is not None:
                self._conn.close()
            log.info("ingest worker %s stopped", self.client_id)
        if self._failure is not None:
            raise RuntimeError("the ingest writer failed") from self._failure

    def _write_loop(self) -> None:
        """Write parsed batches in order until parsing is done and nothing is left."""
        next_stats = time.monotonic() + STATS_EVERY
        next_log = time.monotonic() + LOG_EVERY
        try:
            while True:
                try:
                    items, batch = self._parsed.get(timeout=0.2)
                except queue.Empty:
                    if self._parsing_done.is_set():
                        return
                else:
                    try:
                        self._commit(items, batch)
                    except (Stopped, *UNREACHABLE):
                        return  # asked to stop while the database was unreachable
                now = time.monotonic()
                if now >= next_stats:
                    self._flush_stats()
                    next_stats = now + STATS_EVERY
                if now >= next_log:
                    t = self._totals
                    log.info("ingested %d messages, %d rows, %d dead letters so far",
                             t["messages"], t["rows"], t["dead"])
                    next_log = now + LOG_EVERY
        except Exception as exc:  # a bug, not bad data: stop, so the process is restarted
            log.exception("ingest writer failed")
            self._failure = exc
            self.stop.set()

    def _collect(self) -> list[Received]:
        """Wait for a first message, then take more until the batch is full or its window
        (from the recent arrival rate) has passed."""
        inbox = self.subscriber.inbox
        size = self.settings.ingest_batch_size
        items = inbox.take(size, 0.2)
        if not items:
            return []
        deadline = self.pace.deadline(self._closed_at, time.monotonic())
        while len(items) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # a nap, not a wake-up per message: a thin stream then costs no more per message
            self.stop.wait(min(remaining, TICK))
            items += inbox.take(size - len(items), 0)
            if self.stop.is_set():
                break
        now = time.monotonic()
        self.pace.observe(len(items), now - self._closed_at)
        self._closed_at = now
        return items

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings.db_url(), autocommit=True,
                                    connect_timeout=5)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def _commit(self, items: list[Received], batch: Batch) -> None:
        """Write the batch (retrying while the database is unreachable), then acknowledge it."""
        messages = [it.message for it in items]
        started = time.monotonic()
        for attempt in Retrying(
            retry=retry_if_exception_type(UNREACHABLE),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            stop=lambda _: self.stop.is_set(),
            sleep=self._sleep,
            before_sleep=self._unreachable,
            reraise=True,
        ):
            with attempt:
                try:
                    conn = self._connection()
                    metrics = self.event_metrics.get(conn)
                    with conn.transaction():
                        try:
                            with conn.transaction():
                                written = write_batch(conn, batch, event_metrics=metrics,
                                                      series=self.series)
                        except UNREACHABLE:
                            raise
                        except psycopg.Error as exc:
                            log.warning("batch refused (%s); writing its messages one by one",
                                        exc)
                            self.series.rollback()
                            written = self._one_by_one(conn, messages, metrics)
                        self.stats.write(
                            conn, backlog=len(self.subscriber.inbox), messages=len(items),
                            rows_written=written.rows, dead_letters=written.dead_letters,
                            batches=1, devices_registered=len(written.registered))
                    self.series.commit()
                    self.stats.reset()
                except UNREACHABLE:
                    self.series.rollback()  # series made by the failed transaction are gone
                    self._drop_connection()
                    self.stats.add(db_errors=1)
                    if self.stop.is_set():
                        raise Stopped() from None
                    raise
        committed_ms = wall_ms()
        self.subscriber.ack(items)
        self.stats.batch_seconds.observe(time.monotonic() - started)
        self.stats.lag_seconds.observe_many([(committed_ms - ts) / 1000 for ts in batch.stamps])
        t = self._totals
        t["messages"] += len(items)
        t["rows"] += written.rows
        t["dead"] += written.dead_letters

    def _one_by_one(self, conn: psycopg.Connection[Any], messages: list[Message],
                    metrics: list[str] | None) -> Written:
        """Write each message alone: one the database refuses becomes a dead letter."""
        total = Written()
        for msg in messages:
            try:
                with conn.transaction():  # a savepoint inside the batch's transaction
                    w = write_batch(conn, assemble([msg]), event_metrics=metrics,
                                    series=self.series)
            except UNREACHABLE:
                raise
            except psycopg.Error as exc:
                self.series.rollback()
                reason = f"refused by the database: {exc}"[:500]
                dead = DeadLetter(msg.topic, msg.payload, reason, msg.received_ms)
                w = Written(dead_letters=store_dead_letters(conn, [dead]))
            total.telemetry += w.telemetry
            total.statuses += w.statuses
            total.scans += w.scans
            total.dead_letters += w.dead_letters
            total.registered += w.registered
        return total

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # a stop request ends the back-off at once

    def _unreachable(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database unreachable (%s); retry %d in %.1fs, nothing acknowledged",
                    str(exc).strip().splitlines()[0] if exc else "?", state.attempt_number, wait)

    def _flush_stats(self) -> None:
        try:
            conn = self._connection()
            with conn.transaction():
                self.stats.write(conn, backlog=len(self.subscriber.inbox))
            self.stats.reset()
        except UNREACHABLE:
            self._drop_connection()


def main(settings: Settings | None = None, *, index: int = 0,
         stop: threading.Event | None = None,
         event_metrics: MetricsProvider | None = None) -> None:
    """Run one ingest worker until SIGTERM/SIGINT (or `stop` is set)."""
    settings = settings or get_settings()
    worker = IngestWorker(settings, index=index, stop=stop, event_metrics=event_metrics)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop.set())
    worker.run()
