"""Follow-up queue benchmark: one queue request against a site with years of work orders.

Starts its own PostgreSQL + TimescaleDB on a free loopback port in a temp dir. One site with
--tickets manual and alarm work orders, one resolved every 26 minutes back from now (100 000:
about 5 years), across the five categories; every 50th still waits for its visit, the others
were visited. Times `tickets.follow_ups.queue` (the page and its total, as the API asks):
  due    - ?due=true, the first page of 100
  all    - the whole queue, the first page of 100
Prints figures; it is not a test.

    .venv/bin/python bench/follow_up_bench.py [--tickets 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scratch import scratch_database  # noqa: E402

from stack.app import load_site  # noqa: E402
from tickets import follow_ups  # noqa: E402


def fill(conn: psycopg.Connection[dict[str, object]], tickets: int, now: datetime) -> None:
    """The site's history: work orders resolved one every 26 minutes, most visited."""
    load_site(conn, {"site": {"id": "bench", "name": "Bench", "timezone": "Asia/Shanghai"}},
              now=now)
    conn.execute(
        "INSERT INTO work_orders (site_id, source, severity, priority, title, opened_at,"
        " respond_by, resolve_by, updated_at, category, state, resolved_at, urgency)"
        " SELECT 'bench', CASE WHEN g %% 3 = 0 THEN 'alarm' ELSE 'manual' END, 'minor', 3,"
        "        'ticket', r - interval '2 hours', r, r, r,"
        "        (ARRAY['公区维修', '居家维修', '整改', '设备', '其他'])[1 + g %% 5],"
        "        CASE WHEN g %% 50 = 0 THEN 'resolved' ELSE 'closed' END, r,"
        "        CASE WHEN g %% 3 = 0 THEN NULL ELSE '零修' END"
        "   FROM generate_series(1, %(n)s) g,"
        "        LATERAL (SELECT %(now)s - make_interval(mins => (%(n)s + 1 - g) * 26)) t(r)",
        {"n": tickets, "now": now})
    conn.execute(
        "INSERT INTO follow_ups (site_id, work_order_id, at, actor, channel, outcome,"
        " satisfaction) SELECT site_id, id, resolved_at + interval '1 day', 'desk', 'phone',"
        " 'reached', 5 FROM work_orders WHERE id % 50 <> 0")
    conn.commit()
    conn.execute("ANALYZE")


def timed(conn: psycopg.Connection[dict[str, object]], now: datetime, repeat: int,
          due: bool | None) -> tuple[list[float], int]:
    """Milliseconds per queue request, and the queue's length."""
    took, total = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        _, total = follow_ups.queue(conn, scope="bench", now=now, due=due, limit=100, offset=0)
        took.append((time.perf_counter() - t) * 1000)
    return took, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    with scratch_database("follow-up-bench-") as url:
        now = datetime.now(UTC)
        with psycopg.connect(url, row_factory=dict_row) as conn:
            t = time.monotonic()
            fill(conn, args.tickets, now)
            print(f"filled   {args.tickets} work orders in {time.monotonic() - t:.1f} s")
            for label, due in (("due", True), ("all", None)):
                took, total = timed(conn, now, args.repeat, due)
                print(f"{label:<8} queue of {total}: median {statistics.median(took):.1f} ms, "
                      f"max {max(took):.1f} ms over {args.repeat} requests")


if __name__ == "__main__":
    main()
