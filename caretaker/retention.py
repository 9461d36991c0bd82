"""Retention: drop old chunks of the hypertables, and old scan ids and dead letters; and
compaction: rebuild the index of telemetry chunks that are no longer written."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from caretaker.db import connect
from caretaker.locks import lock_key

log = logging.getLogger(__name__)

HYPERTABLES = ("telemetry_points", "device_status", "scans")
# A chunk this long past its end gets no more points but late ones: its index is rebuilt.
COMPACT_SETTLE = timedelta(hours=2)
COMPACT_LOCK = lock_key("compact-telemetry")


def apply_retention(conn: psycopg.Connection[Any], *, days: int, now: datetime,
                    dead_letter_days: int | None = None) -> int:
    """Drop data older than `days` (dead letters: `dead_letter_days`); chunks and rows gone."""
    cutoff = now - timedelta(days=days)
    dropped = 0
    for table in HYPERTABLES:
        rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                            (table, cutoff)).fetchall()
        dropped += len(rows)
    # a scan's id is kept while its scan is: the ids of dropped scans go with them
    dropped += conn.execute(
        "DELETE FROM scan_ids i WHERE i.time < %s AND NOT EXISTS"
        " (SELECT 1 FROM scans s WHERE s.scan_id = i.scan_id AND s.time = i.time)",
        (cutoff,)).rowcount
    # by when a dead letter was last received: one still arriving is kept
    dead_cutoff = now - timedelta(days=dead_letter_days or days)
    dropped += conn.execute("DELETE FROM dead_letters WHERE last_received_at < %s",
                            (dead_cutoff,)).rowcount
    return dropped


def compact_telemetry(conn: psycopg.Connection[Any], *, now: datetime, limit: int = 1
                      ) -> list[str]:
    """Rebuild the indexes of up to `limit` telemetry chunks that ended COMPACT_SETTLE before
    `now` and were not rebuilt yet; the chunks done.

    While a chunk is written, a point lands in every series' range of its (series_id, time)
    index, so pages split half-full (about 40 bytes an entry); rebuilt full, 28. REINDEX
    CONCURRENTLY blocks neither reads nor late points; `conn` must be in autocommit mode (the
    rebuild cannot run in a transaction). One process at a time (a session advisory lock).
    """
    got = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (COMPACT_LOCK,)).fetchone()
    if not got or not got["ok"]:
        return []
    try:
        # a rebuild interrupted (a stop, a crash) leaves an invalid copy of the index behind
        for row in conn.execute(
                "SELECT n.nspname AS schema, c.relname AS name FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_inherits h ON h.inhrelid = i.indrelid"
                " WHERE h.inhparent = 'telemetry_points'::regclass AND NOT i.indisvalid"
                ).fetchall():
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(row["schema"], row["name"])))
        conn.execute("DELETE FROM compacted_chunks k WHERE NOT EXISTS"  # dropped by retention
                     " (SELECT 1 FROM timescaledb_information.chunks c"
                     "  WHERE format('%%I.%%I', c.chunk_schema, c.chunk_name) = k.chunk)", ())
        chunks = conn.execute(
            "SELECT c.chunk_schema AS schema, c.chunk_name AS name,"
            " format('%%I.%%I', c.chunk_schema, c.chunk_name) AS chunk"
            " FROM timescaledb_information.chunks c"
            " WHERE c.hypertable_name = 'telemetry_points' AND c.range_end <= %s"
            " AND NOT EXISTS (SELECT 1 FROM compacted_chunks k"
            "  WHERE k.chunk = format('%%I.%%I', c.chunk_schema, c.chunk_name))"
            " ORDER BY c.range_end LIMIT %s", (now - COMPACT_SETTLE, limit)).fetchall()
        done = []
        for chunk in chunks:
            indexes = conn.execute(
                "SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = %s::regclass", (chunk["chunk"],)).fetchall()
            for index in indexes:
                name = sql.Identifier(chunk["schema"], index["name"])
                # full pages: a closed chunk gets few inserts (late points) to make room for
                conn.execute(sql.SQL("ALTER INDEX {} SET (fillfactor = 100)").format(name))
                conn.execute(sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(name))
            conn.execute("INSERT INTO compacted_chunks (chunk, compacted_at) VALUES (%s, %s)"
                         " ON CONFLICT DO NOTHING", (chunk["chunk"], now))
            done.append(chunk["chunk"])
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (COMPACT_LOCK,))


def compaction_job(url: Callable[[], str]) -> Callable[[psycopg.Connection[Any], datetime],
                                                      threading.Thread | None]:
    """A scheduler job that compacts in a thread of its own with its own connection, so a
    rebuild (tens of seconds for a busy day) never holds up the worker's other jobs."""
    running = threading.Lock()

    def work(now: datetime) -> None:
        try:
            with connect(url(), autocommit=True) as conn:
                done = compact_telemetry(conn, now=now)
            if done:
                log.info("rebuilt the indexes of telemetry chunk(s) %s", ", ".join(done))
        except Exception:
            log.exception("telemetry compaction failed; retrying on the next run")
        finally:
            running.release()

    def job(conn: psycopg.Connection[Any], now: datetime) -> threading.Thread | None:
        if not running.acquire(blocking=False):
            return None  # the previous rebuild is still under way
        thread = threading.Thread(target=work, args=(now,), name="compaction", daemon=True)
        thread.start()
        return thread

    return job
