"""Fire-pump test log benchmark: the job and the log over a long history of the fire-pump room.

Starts its own PostgreSQL + TimescaleDB on a free loopback port in a temp dir, loads the
example site and writes the simulator's readings of its two fire pumps and jockey pump
(rules/fire_pumps.py's metrics) with COPY, `--days` of them at one reading per `--interval`
seconds. Then it times:
  catch-up - the job's ticks that judge the whole history (every day, week and month)
  idle     - a tick with nothing to judge
  one day  - the ticks that judge one more jockey day (the steady state, once a day)
  log      - the API's log of 28 days and of a year (rules.fire_pump_store.fire_pump_log)
Prints figures; it is not a test.

    .venv/bin/python bench/fire_pump_bench.py [--days 365] [--interval 60]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scratch import scratch_database  # noqa: E402

from caretaker.site_config import example_document  # noqa: E402
from rules import fire_pump_store as store  # noqa: E402
from simulators.devices import MODELS, reading  # noqa: E402
from simulators.fleet import fleet_from_config  # noqa: E402
from stack.app import load_site  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
PUMPS = ("fire-pump-1", "fire-pump-2", "jockey-pump-1")


def write(conn: psycopg.Connection[Any], start: datetime, days: int, interval: int) -> int:
    """The simulator's readings of the three pumps (fire-pump-1 never tests); rows written."""
    devices = [d for d in fleet_from_config(example_document(), known_types=set(MODELS))
               if d.id in PUMPS]
    rows = 0
    with conn.cursor().copy("COPY telemetry (time, site_id, device_id, metric, value,"
                            " text_value) FROM STDIN") as copy:
        for device in devices:
            rng = random.Random(device.key)
            skip = {"auto_test": False} if device.id == "fire-pump-1" else {}
            t0 = start.timestamp()
            for k in range(days * 86400 // interval):
                t = t0 + k * interval
                at = datetime.fromtimestamp(t, UTC)
                for metric, value in reading(device, t, rng, skip).items():
                    text = value if isinstance(value, str) else None
                    copy.write_row((at, "riverside", device.id, metric,
                                    None if text is not None else float(value), text))
                    rows += 1
    return rows


def timed(label: str, fn: Any) -> Any:
    t = time.perf_counter()
    out = fn()
    print(f"  {label:<44} {time.perf_counter() - t:8.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--interval", type=int, default=60)
    args = parser.parse_args()
    start = datetime(2025, 11, 24, tzinfo=ZONE)
    now = start + timedelta(days=args.days, hours=6)
    with scratch_database("fire-pump-bench-") as url, psycopg.connect(
            url, row_factory=dict_row) as conn:
        load_site(conn, example_document(), now=start - timedelta(days=1))
        conn.commit()
        print(f"fire-pump room: 3 pumps, {args.days} days, a reading every {args.interval} s")
        rows = timed("write telemetry (COPY)", lambda: write(conn, start, args.days,
                                                              args.interval))
        conn.commit()
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("VACUUM ANALYZE telemetry")
        print(f"  {rows:,} telemetry rows")

        def tick(at: datetime) -> list[dict[str, Any]]:
            out = store.fire_pump_job(conn, at)
            conn.commit()
            return out

        timed("catch-up tick 1 (history counted)", lambda: tick(now))
        at, catch, slowest = now, 0, 0.0
        t0 = time.perf_counter()
        while True:  # a tick judges at most JUDGE_LIMIT periods per pump and test
            at += store.SETTLE
            t = time.perf_counter()
            got = tick(at)
            if not got:
                break
            catch += len(got)
            slowest = max(slowest, time.perf_counter() - t)
        print(f"  catch-up: {catch} verdicts in {time.perf_counter() - t0:.2f} s,"
              f" slowest tick {slowest:.2f} s")
        gaps = conn.execute("SELECT count(*) AS n FROM fire_pump_tests WHERE status <> 'done'"
                            ).fetchone()["n"]
        print(f"  {gaps} gaps (fire-pump-1's weekly tests)")
        now = at
        timed("idle tick", lambda: tick(now + 2 * store.SETTLE))
        last = conn.execute("SELECT max(period_start) AS at FROM fire_pump_tests"
                            " WHERE test = 'jockey_daily'").fetchone()["at"]
        conn.execute("DELETE FROM fire_pump_tests WHERE test = 'jockey_daily'"
                     " AND period_start = %s", (last,))
        conn.commit()
        again = timed("one more day: tick 1", lambda: tick(now + 3 * store.SETTLE))
        again += timed("one more day: tick 2", lambda: tick(now + 4 * store.SETTLE))
        assert len(again) == 1, again
        end = now.replace(hour=0)
        timed("log of 28 days", lambda: store.fire_pump_log(
            conn, "riverside", end - timedelta(days=28), end, now=now))
        timed("log of 366 days", lambda: store.fire_pump_log(
            conn, "riverside", end - timedelta(days=366), end, now=now))


if __name__ == "__main__":
    main()
