"""Report benchmark: the weekly report of the example site over a backfilled week, and of a
500-device site over a week at one reading per device per 10 s.

Starts its own PostgreSQL + TimescaleDB on a free loopback port in a temp dir. Each site's
week is backfilled straight into the database: telemetry with COPY (one row per device and
reading), and work orders, complaints, follow-up visits, alarms, device outages, patrol runs
and visits with a fixed seed. Then, for each site:
  gather - the KPIs of the week and the five weeks before (reports.kpis.compute) and the
           report's lists (weekly.gather)
  render - the HTML with its charts, then the PDF (WeasyPrint)
  peak RSS of this process after each site.
Prints figures; it is not a test.

    .venv/bin/python bench/report_bench.py [--devices 500] [--interval 10] [--days 7]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scratch import scratch_database  # noqa: E402

from caretaker.site_config import example_document  # noqa: E402
from reports import weekly  # noqa: E402
from reports.periods import Week  # noqa: E402
from reports.render import html_to_pdf  # noqa: E402
from stack.app import load_site  # noqa: E402

WEEK = Week(2026, 47)
CATEGORIES = ("公区维修", "居家维修", "整改", "设备", "其他")
SOURCES = ("alarm", "inspection", "patrol", "manual", "complaint")


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_site(devices: int) -> dict[str, Any]:
    """A site of `devices` pumps, meters and lifts in 10 zones, with 20 guards and routes."""
    types = ("water_pump", "power_meter", "elevator")
    doc = example_document()
    return {
        "site": {"id": "big", "name": "Big Estate 大型社区", "timezone": "Asia/Shanghai"},
        "zones": [{"id": f"z{i}", "name": f"Zone {i}"} for i in range(10)],
        "device_types": [t for t in doc["device_types"] if t["id"] in types],
        "devices": [{"id": f"d{i:04d}", "name": f"Device {i} 设备{i}", "type": types[i % 3],
                     "zone": f"z{i % 10}"} for i in range(devices)],
        "guards": [{"id": f"g{i}", "name": f"Guard {i} 护卫{i}"} for i in range(20)],
        "checkpoints": [{"id": f"cp{i}", "name": f"Point {i}", "tag": f"T{i}"}
                        for i in range(100)],
    }


def telemetry(conn: psycopg.Connection[Any], site: str, devices: list[str], start: datetime,
              days: int, interval: int) -> int:
    """COPY one reading per device every `interval` seconds over `days` days; rows written."""
    steps = days * 86400 // interval
    n = 0
    with conn.cursor().copy("COPY telemetry (time, site_id, device_id, metric, value)"
                            " FROM STDIN") as copy:
        for k in range(steps):
            at = (start + timedelta(seconds=k * interval)).isoformat()
            copy.write("".join(f"{at}\t{site}\t{d}\tvalue\t{(k % 97) / 10}\n"
                               for d in devices))
            n += len(devices)
    return n


def records(conn: psycopg.Connection[Any], site: str, devices: list[str], start: datetime,
            end: datetime, *, tickets: int, routes: list[tuple[str, list[str]]],
            guards: list[str], seed: int = 1) -> None:
    """Work orders, complaints, visits, alarms, outages and patrol runs in [start - 1 week,
    end) with a fixed seed."""
    rnd = random.Random(seed)
    span = (end - start).total_seconds()
    first = start - timedelta(days=7)
    for i in range(tickets):
        opened = first + timedelta(seconds=rnd.uniform(0, span + 7 * 86400))
        resolve_by = opened + timedelta(hours=rnd.choice((4, 24, 72)))
        done = rnd.random() < 0.85
        resolved = opened + timedelta(hours=rnd.uniform(0.5, 80)) if done else None
        device = rnd.choice(devices)
        source = rnd.choice(SOURCES)
        row = conn.execute(
            "INSERT INTO work_orders (site_id, device_id, source, severity, priority, title,"
            " state, opened_at, respond_by, resolve_by, acknowledged_at, resolved_at,"
            " category, repeat_count, updated_at, urgency) VALUES (%s, %s, %s, %s, 2, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s = 'manual' THEN '零修' END)"
            " RETURNING id",
            (site, device, source, rnd.choice(("major", "minor", "critical")),
             f"fault {i}", "resolved" if done else "open", opened,
             opened + timedelta(minutes=30), resolve_by,
             opened + timedelta(minutes=rnd.uniform(5, 60)), resolved,
             rnd.choice(CATEGORIES), rnd.choice((0, 0, 0, 1, 2)), opened, source)).fetchone()
        assert row is not None
        if done and resolved is not None and rnd.random() < 0.6:
            reached = rnd.random() < 0.8
            conn.execute(
                "INSERT INTO follow_ups (site_id, work_order_id, at, actor, channel, outcome,"
                " satisfaction) VALUES (%s, %s, %s, 'desk', 'phone', %s, %s)",
                (site, row["id"], resolved + timedelta(hours=20),
                 "reached" if reached else "unreachable",
                 rnd.choice((3, 4, 5, 5, 5)) if reached else None))
        conn.execute(
            "INSERT INTO alarms (site_id, device_id, rule_id, severity, message, metric,"
            " first_value, raised_at, last_at, state, cleared_at) VALUES (%s, %s, 'r', 'major',"
            " 'high', 'value', 9.9, %s, %s, 'cleared', %s)",
            (site, device, opened, opened, opened + timedelta(hours=1)))
        if rnd.random() < 0.3:
            conn.execute("INSERT INTO device_status (time, site_id, device_id, status)"
                         " VALUES (%s, %s, %s, 'offline'), (%s, %s, %s, 'online')",
                         (opened, site, device, opened + timedelta(hours=2), site, device))
    for i in range(max(tickets // 20, 3)):
        opened = first + timedelta(seconds=rnd.uniform(0, span + 7 * 86400))
        closed = rnd.random() < 0.7
        conn.execute(
            "INSERT INTO complaints (site_id, number, grade, category, channel,"
            " complainant_name, description, state, opened_at, answer_by, answered_at,"
            " closed_at, resolution, created_by, updated_at) VALUES (%s, %s, %s, '设备管理',"
            " 'phone', '张三', 'noise', %s, %s, %s, %s, %s, %s, 'desk', %s)",
            (site, f"TS-2026-{i + 1:04d}", rnd.choice(("轻微", "一般", "严重")),
             "closed" if closed else "open", opened, opened + timedelta(days=3),
             opened + timedelta(days=1) if closed else None,
             opened + timedelta(days=2) if closed else None, "handled" if closed else None,
             opened))
    for r, (route, points) in enumerate(routes):
        guard = guards[r % len(guards)]
        at = first
        while at < end:
            run = conn.execute(
                "INSERT INTO patrol_runs (site_id, schedule_id, route_id, guard_id,"
                " planned_start, start_deadline, planned_end, ordered, min_duration, status,"
                " final) VALUES (%s, %s, %s, %s, %s, %s, %s, false, '0', %s, true)"
                " RETURNING id", (site, f"s-{route}", route, guard, at,
                                  at + timedelta(minutes=10), at + timedelta(hours=1),
                                  rnd.choice(("complete", "complete", "incomplete",
                                              "missed")))).fetchone()
            assert run is not None
            for seq, point in enumerate(points):
                timing = rnd.choice(("on_time", "on_time", "on_time", "early", "late",
                                     "missed"))
                due = at + timedelta(minutes=10 * seq)
                conn.execute(
                    "INSERT INTO patrol_visits (run_id, seq, site_id, checkpoint_id, due_at,"
                    " window_start, window_end, match_from, match_until, timing, status,"
                    " scan_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (run["id"], seq, site, point, due, due - timedelta(minutes=5),
                     due + timedelta(minutes=5), due - timedelta(minutes=10),
                     due + timedelta(minutes=10), timing, timing,
                     None if timing == "missed" else due))
            at += timedelta(hours=2)


def measure(url: str, site: str, label: str, keep: Path | None = None) -> None:
    """Gather and render one site's report of WEEK; print the figures."""
    now = WEEK.bounds("UTC")[1] + timedelta(hours=8)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        t0 = time.perf_counter()
        data = weekly.gather(conn, site, WEEK, now=now)
        gather = time.perf_counter() - t0
    t0 = time.perf_counter()
    html = weekly.to_html(data, "zh-CN")
    t_html = time.perf_counter() - t0
    t0 = time.perf_counter()
    pdf = html_to_pdf(html)
    t_pdf = time.perf_counter() - t0
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"report-{site}-{WEEK}.pdf").write_bytes(pdf)
    print(f"{label:<42} gather {gather:6.2f} s (6 weeks of KPIs + lists)   "
          f"HTML+charts {t_html:5.2f} s   PDF {t_pdf:5.2f} s ({len(pdf) / 1024:,.0f} KiB)   "
          f"peak RSS {rss_mb():,.0f} MB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--interval", type=int, default=10, help="seconds between readings")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write the reports' PDFs into this directory")
    args = ap.parse_args()

    with scratch_database("report-bench-") as url:
        start, end = WEEK.bounds("Asia/Shanghai")
        begin = end - timedelta(days=args.days)
        with psycopg.connect(url, row_factory=dict_row) as c:
            doc = example_document()
            load_site(c, doc, now=start - timedelta(days=30))
            devices = [d["id"] for d in doc["devices"]]
            t0 = time.perf_counter()
            n = telemetry(c, "riverside", devices, begin, args.days, 60)
            routes = [(r["id"], [s["checkpoint"] for s in r["steps"]]) for r in doc["routes"]
                      if r.get("steps")]
            records(c, "riverside", devices, start, end, tickets=60, routes=routes,
                    guards=[g["id"] for g in doc["guards"]])
            c.commit()
            print(f"example site backfilled: {len(devices)} devices, {n:,} readings (60 s), "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
        measure(url, "riverside", "example site (riverside), 18 devices", args.keep)
        with psycopg.connect(url, row_factory=dict_row) as c:
            spec = big_site(args.devices)
            load_site(c, spec, now=start - timedelta(days=30))
            c.commit()
            devices = [d["id"] for d in spec["devices"]]
            t0 = time.perf_counter()
            n = telemetry(c, "big", devices, begin, args.days, args.interval)
            c.commit()
            took = time.perf_counter() - t0
            routes = [(f"r{i}", [f"cp{(i * 5 + k) % 100}" for k in range(5)])
                      for i in range(20)]
            records(c, "big", devices, start, end, tickets=args.devices * 2, routes=routes,
                    guards=[g["id"] for g in spec["guards"]])
            c.commit()
            print(f"big site backfilled: {len(devices)} devices, {n:,} readings "
                  f"({args.interval} s) by COPY in {took:.0f} s "
                  f"({n / took:,.0f} rows/s)", flush=True)
        measure(url, "big", f"{args.devices}-device site", args.keep)


if __name__ == "__main__":
    main()
