"""Rollups: each series' 1-minute and 1-hour buckets, kept from the ingest's rollup_pending.

The ingest records (series, hour) for every point it newly writes, in the points' own
transaction. This job claims settled pending hours with FOR UPDATE SKIP LOCKED (any number of
workers, each hour taken by one), recomputes the hour's 60 minute buckets from the raw points
and the hour from those minutes, and deletes the pending rows in the same transaction: a crash
anywhere rolls the whole batch back, and late or backfilled points simply make their hour
pending again. Reads treat a pending hour as not rolled up (ingest/readback.py reads it raw).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from caretaker import resolution
from caretaker.scheduler import Job, JobFn
from caretaker.settings import Settings

log = logging.getLogger(__name__)

BATCH = 1000  # pending (series, hour) rows a transaction takes
BUDGET = 5.0  # seconds one run of the job works before handing the worker back
HOUR = resolution.HOUR.width

# One hour of the given series, from raw points: the stale rows first, so a bucket whose raw
# points are gone (retention) does not linger.
_MINUTES = (
    "DELETE FROM telemetry_1m WHERE series_id = ANY(%(ids)s)"
    " AND bucket >= %(hour)s AND bucket < %(next)s",
    "INSERT INTO telemetry_1m (series_id, bucket, min, max, sum, nvalues, count, last,"
    " last_text, last_time)"
    " SELECT series_id, time_bucket(INTERVAL '1 minute', time), min(value), max(value),"
    " sum(value), count(value), count(*), last(value, time), last(text_value, time), max(time)"
    " FROM telemetry_points WHERE series_id = ANY(%(ids)s)"
    " AND time >= %(hour)s AND time < %(next)s GROUP BY 1, 2",
)
_HOURS = (
    "DELETE FROM telemetry_1h WHERE series_id = ANY(%(ids)s) AND bucket = %(hour)s",
    "INSERT INTO telemetry_1h (series_id, bucket, min, max, sum, nvalues, count, last,"
    " last_text, last_time)"
    " SELECT series_id, %(hour)s, min(min), max(max), sum(sum), sum(nvalues), sum(count),"
    " last(last, last_time), last(last_text, last_time), max(last_time)"
    " FROM telemetry_1m WHERE series_id = ANY(%(ids)s)"
    " AND bucket >= %(hour)s AND bucket < %(next)s GROUP BY series_id",
)


@dataclass(frozen=True)
class Plan:
    """What to do with claimed pending rows: hours to recompute, and expired ones to drop."""

    hours: dict[datetime, list[int]] = field(default_factory=dict)
    expired: tuple[tuple[int, datetime], ...] = ()


def plan(claims: Sequence[tuple[int, datetime]], *, raw_since: datetime | None) -> Plan:
    """Group claimed (series, hour) rows by hour; hours older than the raw points kept
    (`raw_since`) are dropped unrolled: their rollups stay as they were, raw being partial."""
    hours: dict[datetime, list[int]] = defaultdict(list)
    expired = []
    for series_id, hour in claims:
        if raw_since is not None and hour < raw_since:
            expired.append((series_id, hour))
        else:
            hours[hour].append(series_id)
    return Plan({h: sorted(ids) for h, ids in sorted(hours.items())}, tuple(expired))


def roll_batch(conn: psycopg.Connection[Any], *, now: datetime,
               raw_since: datetime | None = None, batch: int = BATCH) -> int:
    """Roll up to `batch` settled pending hours in the caller's transaction; how many."""
    cur = conn.cursor(row_factory=tuple_row)
    claims = cur.execute(
        "SELECT series_id, bucket FROM rollup_pending WHERE bucket <= %s"
        " ORDER BY bucket LIMIT %s FOR UPDATE SKIP LOCKED",
        (resolution.ready_until(now), batch)).fetchall()
    if not claims:
        return 0
    todo = plan(claims, raw_since=raw_since)
    for hour, ids in todo.hours.items():
        params = {"ids": ids, "hour": hour, "next": hour + HOUR}
        for statement in (*_MINUTES, *_HOURS):
            cur.execute(statement, params)
    if todo.expired:
        log.warning("%d pending hours older than the raw points kept: rollups left as they were",
                    len(todo.expired))
    cur.execute("DELETE FROM rollup_pending p USING unnest(%s::int[], %s::timestamptz[])"
                " AS c(series_id, bucket) WHERE p.series_id = c.series_id"
                " AND p.bucket = c.bucket",
                ([c[0] for c in claims], [c[1] for c in claims]))
    return len(claims)


def catch_up(conn: psycopg.Connection[Any], *, now: datetime, raw_since: datetime | None = None,
             budget: float = BUDGET, batch: int = BATCH) -> int:
    """Roll batches, committing each, until none is left or `budget` seconds are spent."""
    done = 0
    deadline = time.monotonic() + budget
    while True:
        n = roll_batch(conn, now=now, raw_since=raw_since, batch=batch)
        conn.commit()
        done += n
        if n < batch or time.monotonic() >= deadline:
            return done


def apply_retention(conn: psycopg.Connection[Any], *, now: datetime, raw_days: int,
                    minute_days: int, hour_days: int) -> int:
    """Drop raw points, 1m and 1h rollups older than their retention; chunks dropped."""
    dropped = 0
    for table, days in (("telemetry_points", raw_days), ("telemetry_1m", minute_days),
                        ("telemetry_1h", hour_days)):
        dropped += len(conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                                    (table, now - timedelta(days=days))).fetchall())
    return dropped


def _job(settings: Settings) -> JobFn:
    def run(conn: psycopg.Connection[Any], now: datetime) -> int:
        return catch_up(conn, now=now,
                        raw_since=now - timedelta(days=settings.raw_retention_days))
    return run


def rollup_jobs(settings: Settings) -> list[Job]:
    """The rules worker's rollup jobs: roll pending hours, and drop what retention says."""
    return [
        Job("rollups", 10.0, _job(settings)),
        Job("rollups-retention", 3600, lambda conn, now: apply_retention(
            conn, now=now, raw_days=settings.raw_retention_days,
            minute_days=settings.rollup_minute_retention_days,
            hour_days=settings.rollup_hour_retention_days)),
    ]
