"""Ingest counters: each worker adds its deltas to `ingest_stats`; the API exposes them.

The ingest runs in other processes (maybe other hosts) than the API, so the database is
where their counters meet; a prometheus-client Collector reads the table on every scrape.
"""

from __future__ import annotations

import bisect
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

BATCH_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BOUNDS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5,
              2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
COUNTERS = ("messages", "rows_written", "dead_letters", "batches", "devices_registered",
            "db_errors")


class Histogram:
    """Counts per bucket (not cumulative; the last bucket is +Inf) and the sum."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe_many(self, values: Sequence[float]) -> None:
        counts, bounds, find = self.counts, self.bounds, bisect.bisect_left
        for v in values:
            counts[find(bounds, v)] += 1
        self.total += sum(values)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def reset(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0


class WorkerStats:
    """What one ingest worker did since its last flush to `ingest_stats`."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.batch_seconds = Histogram(BATCH_BOUNDS)
        self.lag_seconds = Histogram(LAG_BOUNDS)

    def add(self, **deltas: int) -> None:
        for key, value in deltas.items():
            self.counters[key] += value

    def write(self, conn: psycopg.Connection, *, backlog: int, **batch: int) -> None:
        """Add the deltas (and `batch`'s) to this worker's row in the caller's transaction.

        Called in each batch's own transaction, so the counters are exact across crashes;
        `reset()` once committed.
        """
        c = {k: v + batch.get(k, 0) for k, v in self.counters.items()}
        b, lag = self.batch_seconds, self.lag_seconds
        conn.execute(
            "INSERT INTO ingest_stats AS s (worker, host, pid, messages, rows_written,"
            " dead_letters, batches, devices_registered, db_errors, batch_buckets,"
            " batch_seconds_sum, lag_buckets, lag_seconds_sum, lag_count, backlog)"
            " VALUES (%(worker)s, %(host)s, %(pid)s, %(messages)s, %(rows_written)s,"
            " %(dead_letters)s, %(batches)s, %(devices_registered)s, %(db_errors)s, %(bb)s,"
            " %(bs)s, %(lb)s, %(ls)s, %(lc)s, %(backlog)s)"
            " ON CONFLICT (worker) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            " messages = s.messages + excluded.messages,"
            " rows_written = s.rows_written + excluded.rows_written,"
            " dead_letters = s.dead_letters + excluded.dead_letters,"
            " batches = s.batches + excluded.batches,"
            " devices_registered = s.devices_registered + excluded.devices_registered,"
            " db_errors = s.db_errors + excluded.db_errors,"
            " batch_buckets = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)"
            "  FROM unnest(s.batch_buckets, excluded.batch_buckets) WITH ORDINALITY AS t(a, b, i)),"
            " batch_seconds_sum = s.batch_seconds_sum + excluded.batch_seconds_sum,"
            " lag_buckets = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY i)"
            "  FROM unnest(s.lag_buckets, excluded.lag_buckets) WITH ORDINALITY AS t(a, b, i)),"
            " lag_seconds_sum = s.lag_seconds_sum + excluded.lag_seconds_sum,"
            " lag_count = s.lag_count + excluded.lag_count,"
            " backlog = excluded.backlog, updated_at = now()",
            {**c, "worker": self.worker, "host": socket.gethostname(), "pid": os.getpid(),
             "bb": b.counts, "bs": b.total, "lb": lag.counts, "ls": lag.total,
             "lc": lag.count, "backlog": backlog},
        )

    def reset(self) -> None:
        """Forget the deltas once they are committed."""
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.batch_seconds.reset()
        self.lag_seconds.reset()


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    padded = list(counts) + [0] * (len(bounds) + 1 - len(counts))
    for bound, n in zip([*map(str, bounds), "+Inf"], padded, strict=False):
        running += n
        out.append((bound, float(running)))
    return out


def read_stats(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every worker's row of ingest_stats, with its age in seconds (rows as dicts)."""
    return [dict(r) for r in conn.execute(
        "SELECT *, extract(epoch FROM now() - updated_at)::float8 AS age FROM ingest_stats"
        " ORDER BY worker").fetchall()]


class IngestCollector(Collector):
    """Exposes the ingest workers' counters from `ingest_stats` on every scrape."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Any]:
        with self.pool.connection() as conn:
            rows = read_stats(conn)
        helps = {
            "messages": "MQTT messages received and committed",
            "rows_written": "rows newly written (telemetry, device status, scans)",
            "dead_letters": "messages refused and kept in dead_letters",
            "batches": "batches committed",
            "devices_registered": "unknown devices auto-registered as unassigned",
            "db_errors": "failed database write attempts (retried)",
        }
        for name in COUNTERS:
            fam = CounterMetricFamily(f"caretaker_ingest_{name}", helps[name], labels=["worker"])
            for r in rows:
                fam.add_metric([r["worker"]], float(r[name]))
            yield fam
        batch = HistogramMetricFamily("caretaker_ingest_batch_seconds",
                                      "time to write and commit one batch", labels=["worker"])
        lag = HistogramMetricFamily("caretaker_ingest_commit_lag_seconds",
                                    "from a message's timestamp to the commit of its rows",
                                    labels=["worker"])
        backlog = GaugeMetricFamily("caretaker_ingest_backlog",
                                    "messages received by a worker and not yet committed",
                                    labels=["worker"])
        age = GaugeMetricFamily("caretaker_ingest_stats_age_seconds",
                                "seconds since a worker last reported", labels=["worker"])
        for r in rows:
            w = [r["worker"]]
            batch.add_metric(w, _cumulative(BATCH_BOUNDS, r["batch_buckets"]),
                             r["batch_seconds_sum"])
            lag.add_metric(w, _cumulative(LAG_BOUNDS, r["lag_buckets"]), r["lag_seconds_sum"])
            backlog.add_metric(w, float(r["backlog"]))
            age.add_metric(w, float(r["age"]))
        yield from (batch, lag, backlog, age)


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float:
    """Estimate a quantile from per-bucket counts, interpolating linearly inside a bucket."""
    total = sum(counts)
    if not total:
        return float("nan")
    target, running, lower = q * total, 0, 0.0
    for i, n in enumerate(counts):
        upper = bounds[i] if i < len(bounds) else bounds[-1]
        if n and running + n >= target:
            return lower + (upper - lower) * (target - running) / n
        running += n
        lower = upper
    return bounds[-1]
