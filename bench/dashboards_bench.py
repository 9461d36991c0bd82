"""Dashboards benchmark: every panel query of every dashboard, macros and variables expanded as
Grafana would, run as the read-only role over the example site with a backfilled history.

Starts its own PostgreSQL + TimescaleDB on a free loopback port in a temp dir, loads the
example site (18 devices), backfills `--days` of telemetry (every metric of every device each
`--interval` seconds) and three weeks of work orders, alarms, complaints, follow-ups, patrol
runs and gaps, creates the reader role, then runs each panel query `--repeat` times over the
dashboard's default range and over `--long` days, and prints the median and worst time per
panel. Raw points are read with time_bucket: there are no rollups yet (issue 15).
Prints figures; it is not a test.

    .venv/bin/python bench/dashboards_bench.py [--days 30] [--interval 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scratch import scratch_database  # noqa: E402

from dashboards.macros import expand, parse_interval  # noqa: E402
from dashboards.provisioning import dashboards_for_api  # noqa: E402
from dashboards.reader import READER, ensure_reader  # noqa: E402
from tests.dashboards.backfill import example_site, records, telemetry  # noqa: E402
from tests.dashboards.test_panels_db import queries, variables_of  # noqa: E402

PASSWORD = "bench-reader"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="days of telemetry")
    ap.add_argument("--interval", type=int, default=60, help="seconds between readings")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=int, default=30, help="the long range, days")
    args = ap.parse_args()

    with scratch_database("dashboards-bench-") as url:
        now = datetime.now(UTC).replace(microsecond=0)
        with psycopg.connect(url, row_factory=dict_row) as c:
            doc = example_site(c, now)
            t0 = time.perf_counter()
            n = telemetry(c, doc, now - timedelta(days=args.days), now,
                          timedelta(seconds=args.interval))
            records(c, doc, now - timedelta(days=21), now, tickets=200)
            c.commit()
            c.execute("ANALYZE")
            ensure_reader(c, PASSWORD)
            c.commit()
            print(f"example site backfilled: {len(doc['devices'])} devices, {n:,} readings "
                  f"({args.days} d at {args.interval} s) in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        u = urlsplit(url)
        reader_url = urlunsplit(u._replace(netloc=f"{READER}:{PASSWORD}@{u.hostname}:{u.port}"))
        worst = 0.0
        with psycopg.connect(reader_url, row_factory=dict_row, autocommit=True) as reader:
            for board in dashboards_for_api():
                default = parse_interval(board["time"]["from"].removeprefix("now-"))
                for label, span in (("default", default),
                                    (f"{args.long} d", timedelta(days=args.long))):
                    start = now - span
                    variables = variables_of(board, reader, start, now)
                    for where, _fmt, raw in queries(board):
                        sql = expand(raw, start=start, end=now, variables=variables)
                        times = []
                        for _ in range(args.repeat):
                            t0 = time.perf_counter()
                            rows = reader.execute(sql).fetchall()
                            times.append(time.perf_counter() - t0)
                        worst = max(worst, max(times))
                        print(f"{label:>8} {where[:70]:<70} median "
                              f"{statistics.median(times) * 1000:7.1f} ms  max "
                              f"{max(times) * 1000:7.1f} ms  rows {len(rows)}", flush=True)
        print(json.dumps({"worst_ms": round(worst * 1000, 1)}))


if __name__ == "__main__":
    main()
