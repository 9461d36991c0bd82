"""Scheduler benchmark: outbox row committed → the job that takes it runs, polling vs listening.

Starts its own PostgreSQL on a free loopback port in a temp dir. A feeder commits one outbox
row at a time (with the NOTIFY the ingest sends) at random intervals; the consuming job runs
in `caretaker.scheduler.run_forever`, either polling every 50 ms (the rules inbox's interval)
or woken by the NOTIFY (LISTEN, with a 1 s fallback interval). Prints the pickup latency and
how often each mode runs the job while nothing arrives. It is not a test.

    .venv/bin/python bench/wake_bench.py [--rows 300]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker.clock import system_clock  # noqa: E402
from caretaker.db import make_pool  # noqa: E402
from caretaker.scheduler import CHANNEL, Job, run_forever  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from caretaker.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, mode: str, rows: int) -> tuple[list[float], float]:
    """Pickup latencies (s) of `rows` rows, and the job's runs per second when idle."""
    latencies: list[float] = []
    runs = 0

    def take(conn: psycopg.Connection[Any], now: datetime) -> None:
        nonlocal runs
        runs += 1
        for row in conn.execute("DELETE FROM bench_outbox RETURNING at").fetchall():
            latencies.append(time.time() - row["at"])

    job = (Job("inbox", 0.05, take) if mode == "poll"
           else Job("inbox", 1.0, take, wakes_on=("telemetry",)))
    pool = make_pool(Settings(database_url=url), max_size=2)
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(pool, [job], system_clock, stop))
    worker.start()
    try:
        time.sleep(1.0)  # connect and listen
        runs = 0
        time.sleep(5.0)  # idle: nothing arrives
        idle = runs / 5.0
        rng = random.Random(1)
        with psycopg.connect(url) as feeder:
            for _ in range(rows):
                feeder.execute("INSERT INTO bench_outbox (at) VALUES (%s)", (time.time(),))
                feeder.execute("SELECT pg_notify(%s, 'telemetry')", (CHANNEL,))
                feeder.commit()
                time.sleep(rng.uniform(0.02, 0.08))
        deadline = time.monotonic() + 5
        while len(latencies) < rows and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
        pool.close()
    return latencies, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="caretaker-wbench-"))
    os.chmod(state, 0o755)
    pg = LocalPostgres(state, free_port())
    try:
        pg.start()
        with psycopg.connect(pg.url) as c:
            c.execute("CREATE TABLE bench_outbox (id serial PRIMARY KEY, at double precision)")
        print(f"outbox row committed -> consuming job run, {args.rows} rows 20-80 ms apart, "
              f"{os.cpu_count()} CPUs")
        for mode in ("poll", "listen"):
            lat, idle = measure(pg.url, mode, args.rows)
            ms = [x * 1000 for x in lat]
            label = ("polling every 50 ms" if mode == "poll"
                     else "LISTEN caretaker_events (1 s fallback)")
            print(f"  {label:<40} {len(ms)}/{args.rows} rows: p50 {pct(ms, 0.5):.1f} ms, "
                  f"p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms, mean "
                  f"{statistics.mean(ms):.1f} ms; idle: {idle:.1f} job runs/s")
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
