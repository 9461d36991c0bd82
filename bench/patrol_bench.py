"""Patrol benchmark: how soon gaps appear after a window closes, and how fast scans are checked.

Starts its own PostgreSQL + TimescaleDB on a free loopback port in a temp dir, and
`caretaker rules` as a process on the system clock. A site with --guards guards, each with
its own 3-point route walked every 2 minutes (points due at +0 s, +30 s, +60 s, ± 10 s).
A feeder stores scans as the ingest does (ingest.store.store_scans: rows + outbox event)
in real time, skipping the middle point, so every run raises one missed_checkpoint gap.
  latency  - gap detected_at minus the window's end (settle is 2 s, the tick 0.5 s)
  scan lag - scan stored → checked by the patrol worker (scan_checks.checked_at)
  drain    - --burst scans stored at once (an offline sync), time until all are checked
  catch-up - --catchup-days of hourly history for every guard planned and checked at start
Prints figures; it is not a test.

    .venv/bin/python bench/patrol_bench.py [--guards 100] [--cycles 2] [--burst 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker.migrations import migrate  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from ingest.payloads import Scan  # noqa: E402
from ingest.store import store_scans  # noqa: E402
from stack.app import load_site  # noqa: E402

EVERY = timedelta(minutes=2)
OFFSETS = (timedelta(0), timedelta(seconds=30), timedelta(seconds=60))


def site(guards: int, first: datetime, catchup_days: int) -> dict[str, object]:
    """The benchmark site: per guard three points, a route, a 2-minute schedule."""
    start = first.strftime("%H:%M")
    doc: dict[str, object] = {
        "site": {"id": "bench", "name": "Bench", "timezone": "UTC"},
        "guards": [{"id": f"g{i}", "name": f"Guard {i}"} for i in range(guards)],
        "checkpoints": [{"id": f"cp{i}-{k}", "name": f"P{i}.{k}", "tag": f"T{i}-{k}"}
                        for i in range(guards) for k in range(3)],
        "routes": [{"id": f"r{i}", "name": f"Round {i}", "grace": "20s",
                    "steps": [{"checkpoint": f"cp{i}-{k}", "offset": f"{k * 30}s",
                               "tolerance": "10s"} for k in range(3)]}
                   for i in range(guards)],
        "schedules": [{"id": f"s{i}", "route": f"r{i}", "guard": f"g{i}", "kind": "every",
                       "every": "2m", "window": {"start": start, "end": "23:59"},
                       "effective_from": first.date().isoformat()} for i in range(guards)],
    }
    if catchup_days:
        past = (first - timedelta(days=catchup_days)).date().isoformat()
        doc["schedules"] += [  # type: ignore[operator]
            {"id": f"h{i}", "route": f"r{i}", "guard": f"g{i}", "kind": "every",
             "every": "1h", "effective_from": past, "effective_until":
             (first - timedelta(days=1)).date().isoformat()} for i in range(guards)]
    return doc


def feeder(url: str, guards: int, first: datetime, cycles: int, stop: threading.Event
           ) -> None:
    """Store each run's first and last scan at its due time (the middle one is missed)."""
    due = sorted((first + n * EVERY + OFFSETS[k], i, k)
                 for n in range(cycles) for i in range(guards) for k in (0, 2))
    with psycopg.connect(url) as conn:
        for when, i, k in due:
            wait = (when - datetime.now(UTC)).total_seconds()
            if wait > 0 and stop.wait(wait):
                return
            store_scans(conn, "bench", f"g{i}", [Scan(uuid.uuid4(), f"T{i}-{k}", when)],
                        received_at=datetime.now(UTC))
            conn.commit()


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guards", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--catchup-days", type=int, default=7)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="patrol-bench-"))
    os.chmod(tmp, 0o755)
    pg = LocalPostgres(tmp, free_port())
    pg.start()
    worker = None
    try:
        base = pg.url.rsplit("/", 1)[0]
        with psycopg.connect(base + "/postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        url = base + "/bench"
        with psycopg.connect(url) as c:
            migrate(c)
        now = datetime.now(UTC)
        first = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
        if first.hour == 23 and first.minute >= 50:
            sys.exit("run this benchmark outside 23:50–00:00 UTC")
        with psycopg.connect(url, row_factory=dict_row) as c:
            load_site(c, site(args.guards, first, args.catchup_days),
                             now=now)
            c.commit()
        env = {**os.environ, "CARETAKER_DATABASE_URL": url,
               "CARETAKER_STATE_DIR": str(tmp / "state")}
        t0 = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-m", "stack.cli", "rules"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "rules.log", "w"))
        with psycopg.connect(url, row_factory=dict_row, autocommit=True) as c:
            if args.catchup_days:
                want = args.guards * 24 * args.catchup_days
                while True:
                    row = c.execute(
                        "SELECT count(*) AS runs, count(*) FILTER (WHERE checked_at IS NOT NULL)"
                        " AS checked FROM patrol_runs WHERE schedule_id LIKE 'h%%'").fetchone()
                    if row and row["runs"] >= want and row["checked"] >= want:
                        break
                    time.sleep(0.2)
                took = time.monotonic() - t0
                print(f"catch-up  {want} past runs ({args.catchup_days} days, hourly, "
                      f"{args.guards} guards) planned and checked in {took:.1f} s "
                      f"({want / took:.0f} runs/s)")
            stop = threading.Event()
            feed = threading.Thread(target=feeder, args=(url, args.guards, first, args.cycles,
                                                         stop))
            feed.start()
            feed.join()
            last_close = first + (args.cycles - 1) * EVERY + OFFSETS[1] + timedelta(seconds=10)
            time.sleep(max(0.0, (last_close - datetime.now(UTC)).total_seconds()) + 6)
            rows = c.execute(
                "SELECT extract(epoch FROM g.detected_at - g.window_end) AS delay"
                " FROM inspection_gaps g JOIN patrol_runs r ON r.id = g.run_id"
                " WHERE g.kind = 'missed_checkpoint' AND r.schedule_id LIKE 's%%'").fetchall()
            delays = [float(r["delay"]) for r in rows]
            expected = args.guards * args.cycles
            print(f"latency  {len(delays)}/{expected} missed points raised; window end → gap "
                  f"p50 {statistics.median(delays):.2f} s, p95 {pct(delays, 0.95):.2f} s, "
                  f"max {max(delays):.2f} s")
            lag = [float(r["lag"]) for r in c.execute(
                "SELECT extract(epoch FROM k.checked_at - s.received_at) AS lag FROM scans s"
                " JOIN scan_checks k ON k.scan_id = s.scan_id WHERE s.guard_id LIKE 'g%%'"
                " AND s.tag LIKE 'T%%'").fetchall()]
            print(f"scan lag {len(lag)} scans stored → checked: p50 {statistics.median(lag):.2f}"
                  f" s, p95 {pct(lag, 0.95):.2f} s, max {max(lag):.2f} s")
            # an offline sync: --burst scans of unknown tags and of real points at once
            before = c.execute("SELECT count(*) AS n FROM scan_checks").fetchone()
            assert before is not None
            burst_at = datetime.now(UTC) - timedelta(hours=3)
            t1 = time.monotonic()
            with psycopg.connect(url) as w:
                per = 500
                for b in range(0, args.burst, per):
                    i = (b // per) % args.guards
                    store_scans(w, "bench", f"g{i}", [
                        Scan(uuid.uuid4(), f"T{i}-{(b + j) % 3}" if j % 2 else "UNKNOWN",
                             burst_at + timedelta(seconds=b + j * 7))
                        for j in range(per)], received_at=datetime.now(UTC))
                    w.commit()
            stored = time.monotonic() - t1
            while True:
                row = c.execute("SELECT count(*) AS n FROM scan_checks").fetchone()
                if row and row["n"] - before["n"] >= args.burst:
                    break
                time.sleep(0.1)
            took = time.monotonic() - t1
            print(f"drain    {args.burst} scans (stored in {stored:.1f} s) all checked after "
                  f"{took:.1f} s: {args.burst / took:.0f} scans/s")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        pg.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
