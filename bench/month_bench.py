"""A month of data: long-range telemetry reads while the ingest runs at 5,000 msg/s.

Starts its own PostgreSQL + TimescaleDB and Mosquitto on free loopback ports in a temp dir,
then `caretaker ingest` and `caretaker api` as processes. A short burst of `caretaker simulate`
creates the generated fleet's series; then the history before it is backfilled straight into
the database (INSERT ... SELECT generate_series, one day a statement: PostgreSQL makes the
rows, so Python's formatting does not take a core from it) with the rollup_pending rows the
ingest would have written, and the rollup job (rules/rollups.py) catches up, timed. Then, with
the simulator offering --rate msg/s and the rollup job running every 10 s as the rules worker
does, one client reads in turn: a device-metric over 30 days (auto: 1h rollups), over 24 hours
(auto: 1m rollups, both pages), the last hour raw (a page of 1,000), the site-wide latest
readings, and a page of scans deep in the list (by cursor). Prints p50/p99 of each and the
30-day / 1-hour ratio; with --soak N, N minutes more at the rate, sampling memory and backlogs.
Prints figures; it is not a test.

    .venv/bin/python bench/month_bench.py [--devices 500] [--days 30] [--interval 300]
                                          [--rate 5000] [--rounds 100] [--soak 0]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker import resolution  # noqa: E402
from caretaker.migrations import migrate  # noqa: E402
from caretaker.resolution import EPOCH  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from caretaker.tokens import create_token  # noqa: E402
from ingest import readback  # noqa: E402
from rules.rollups import catch_up  # noqa: E402
from simulators.fleet import DEVICES_PER_SITE  # noqa: E402
from tests.fix_servers import broker_dir, start_broker  # noqa: E402 - logins like the tests'

ROOT = Path(__file__).resolve().parent.parent
SITE = "sim-site-001"
GUARDS = 20
SCAN_EVERY = timedelta(minutes=2)  # per guard: ~430,000 scans in 30 days
DEEP_PAGE = 50  # the scans page measured: 50 pages of 100 into the list


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wait_http(url: str, deadline: float) -> None:
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _one(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _ingested(url: str) -> int:
    with psycopg.connect(url) as c:
        return int(_one(c, "SELECT coalesce(sum(messages), 0) FROM ingest_stats") or 0)


def _rss_mb(pid: int) -> float:
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
    return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in path.read_text().split()] if path.exists() else []
    return [k for c in kids for k in (c, *_children(c))]


def backfill(url: str, start: datetime, end: datetime, step: timedelta) -> tuple[int, float]:
    """Points of every series each `step` in [start, end) and their pending hours; (rows, s)."""
    t0 = time.perf_counter()
    rows = 0
    with psycopg.connect(url, autocommit=True) as conn:
        day = start
        while day < end:
            stop = min(day + timedelta(days=1), end)
            cur = conn.execute(
                "INSERT INTO telemetry_points (series_id, time, value)"
                " SELECT s.id, t, round((10 + (s.id %% 17) + 5 * sin(extract(epoch FROM t)"
                " / 3600.0 + s.id))::numeric, 3)::float8"
                " FROM series s CROSS JOIN generate_series(%s::timestamptz,"
                " %s::timestamptz - interval '1 microsecond', %s) t ORDER BY t, s.id",
                (day, stop, step))
            rows += cur.rowcount
            conn.execute(
                "INSERT INTO rollup_pending (series_id, bucket) SELECT s.id, h FROM series s"
                " CROSS JOIN generate_series(date_trunc('hour', %s::timestamptz, 'UTC'),"
                " %s::timestamptz - interval '1 microsecond', interval '1 hour') h"
                " ON CONFLICT DO NOTHING", (day, stop))
            day = stop
        conn.execute("VACUUM ANALYZE telemetry_points")
        conn.execute("ANALYZE rollup_pending")
    return rows, time.perf_counter() - t0


def backfill_scans(url: str, start: datetime, end: datetime) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        n = conn.execute(
            "INSERT INTO scans (time, scan_id, site_id, guard_id, tag, received_at)"
            " SELECT t, gen_random_uuid(), %s, 'guard-' || g, 'tag-' || (g * 7 + i) %% 40, t"
            " FROM generate_series(1, %s) g, LATERAL (SELECT t, row_number() OVER () AS i"
            " FROM generate_series(%s::timestamptz, %s::timestamptz, %s) t) x",
            (SITE, GUARDS, start, end, SCAN_EVERY)).rowcount
        conn.execute("ANALYZE scans")
    return n


def roll_all(url: str) -> tuple[int, float]:
    """The rollup job until nothing settled is pending; (hours rolled, seconds)."""
    t0 = time.perf_counter()
    done = 0
    with psycopg.connect(url) as conn:
        while True:
            n = catch_up(conn, now=datetime.now(UTC), budget=60.0)
            done += n
            if n == 0:
                return done, time.perf_counter() - t0


class RollupWorker(threading.Thread):
    """The rules worker's rollup job: every 10 s, as stack/app.py registers it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.runs, self.rolled, self.busy = url, threading.Event(), 0, 0, 0.0

    def run(self) -> None:
        with psycopg.connect(self.url) as conn:
            while not self.stop.wait(10.0):
                t0 = time.perf_counter()
                self.rolled += catch_up(conn, now=datetime.now(UTC))
                self.busy += time.perf_counter() - t0
                self.runs += 1


def measure(base: str, token: str, device: str, metric: str, rounds: int
            ) -> dict[str, list[float]]:
    """Each read `rounds` times, in turn; seconds per read."""
    headers = {"Authorization": f"Bearer {token}"}
    one = {"site": SITE, "device": device, "metric": metric}
    out: dict[str, list[float]] = {k: [] for k in (
        "30 d hourly (1h)", "24 h by minute (1m)", "1 h raw (1,000)", "latest (site)",
        f"scans page {DEEP_PAGE}")}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        deep = None  # the cursor of the deep scans page, found once by walking there
        for _ in range(DEEP_PAGE - 1):
            r = client.get("/scans", params={"site": SITE, "limit": 100,
                                             **({"cursor": deep} if deep else {})})
            r.raise_for_status()
            deep = r.json()["next_cursor"]

        def get(path: str, params: dict[str, Any], want: str | None = None) -> dict[str, Any]:
            r = client.get(path, params=params)
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            if want is not None and body.get("resolution") != want:
                raise RuntimeError(f"{path} {params} answered {body.get('resolution')}")
            return body

        for _ in range(rounds):
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            get("/telemetry", {**one, "from": (now - timedelta(days=30)).isoformat()}, "1h")
            t1 = time.perf_counter()
            body = get("/telemetry", {**one, "from": (now - timedelta(hours=24)).isoformat(),
                                      "to": now.isoformat()}, "1m")
            while body["next_cursor"]:
                body = get("/telemetry", {**one, "from": (now - timedelta(hours=24)).isoformat(),
                                          "to": now.isoformat(), "cursor": body["next_cursor"]})
            t2 = time.perf_counter()
            get("/telemetry", {**one, "from": (now - timedelta(hours=1)).isoformat()}, "raw")
            t3 = time.perf_counter()
            get("/telemetry/latest", {"site": SITE, "within": "1h"})
            t4 = time.perf_counter()
            get("/scans", {"site": SITE, "limit": 100, "cursor": deep})
            t5 = time.perf_counter()
            for key, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                out[key].append(dt)
    return out


def measure_db(url: str, device: str, metric: str, rounds: int) -> dict[str, list[float]]:
    """The telemetry reads without HTTP: ingest/readback.py's functions on one connection."""
    out: dict[str, list[float]] = {k: [] for k in (
        "30 d hourly (1h)", "24 h by minute (1m)", "1 h raw (1,000)", "latest (site)")}
    one = {"site": SITE, "device": device, "metric": metric}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(rounds):
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            readback.telemetry_buckets(conn, **one, start=now - timedelta(days=30), end=now,
                                       bucket=resolution.HOUR.width, tier=resolution.HOUR,
                                       limit=1000)
            t1 = time.perf_counter()
            readback.telemetry_buckets(conn, **one, start=now - timedelta(hours=24), end=now,
                                       bucket=resolution.MINUTE.width, tier=resolution.MINUTE,
                                       limit=1440)
            t2 = time.perf_counter()
            readback.telemetry_points(conn, **one, start=now - timedelta(hours=1), end=now,
                                      limit=1000)
            t3 = time.perf_counter()
            readback.latest_values(conn, site=SITE, device=None, since=now - timedelta(hours=1),
                                   limit=10000)
            t4 = time.perf_counter()
            for key, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                out[key].append(dt)
    return out


def report(title: str, lat: dict[str, list[float]]) -> None:
    """p50/p99/max of each read, and the 30-day / 1-hour ratio."""
    print(f"{title} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'read':<24} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in lat.items():
        print(f"{name:<24} {_quantile(values, .5) * 1000:>8.1f} "
              f"{_quantile(values, .99) * 1000:>8.1f} {max(values) * 1000:>8.1f}")
    month, hour = lat["30 d hourly (1h)"], lat["1 h raw (1,000)"]
    print(f"30-day / 1-hour raw: p50 {_quantile(month, .5) / _quantile(hour, .5):.2f}x, "
          f"p99 {_quantile(month, .99) / _quantile(hour, .99):.2f}x")


print = functools.partial(print, flush=True)  # noqa: A001 - progress shows as it comes


def main() -> None:  # noqa: PLR0915 - one benchmark, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--interval", type=float, default=300,
                        help="seconds between a series' backfilled points")
    parser.add_argument("--rate", type=float, default=5000, help="msg/s the simulator offers")
    parser.add_argument("--rounds", type=int, default=100, help="times each read is measured")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of stream first")
    parser.add_argument("--soak", type=float, default=0, help="minutes of soak afterwards")
    args = parser.parse_args()

    state = broker_dir()  # the mosquitto user must reach it
    pg = LocalPostgres(state, free_port())
    procs: dict[str, subprocess.Popen[bytes]] = {}
    broker = None
    worker: RollupWorker | None = None
    try:
        pg.start()
        broker = start_broker(state)
        with psycopg.connect(pg.url) as conn:
            migrate(conn)
        sites = [f"sim-site-{i:03d}" for i in range(1, -(-args.devices // DEVICES_PER_SITE) + 1)]
        with psycopg.connect(pg.url) as conn:
            for site in sites:
                conn.execute("INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s)",
                             (site, site, "Asia/Shanghai"))
            token = create_token(conn, role="admin", name="month bench", expires="never")
        env = {**os.environ, "CARETAKER_DATABASE_URL": pg.url,
               "CARETAKER_MQTT_URL": broker.url(), "CARETAKER_STATE_DIR": str(state),
               "PYTHONPATH": str(ROOT)}
        api_port = free_port()

        def start(name: str, *cmd: str) -> None:
            log = (state / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen([sys.executable, "-m", "stack.cli", *cmd], env=env,
                                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        def stop(name: str) -> None:
            proc = procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

        simulate = ("simulate", "--devices", str(args.devices), "--rate", str(args.rate),
                    "--no-guards")
        start("ingest", "ingest")
        start("api", "api", "--port", str(api_port))
        base = f"http://127.0.0.1:{api_port}/api/v1"
        _wait_http(f"{base}/health", time.time() + 60)
        # the fleet's series, made by the ingest from a short burst of the stream
        start("simulate", *simulate)
        deadline = time.time() + 120
        with psycopg.connect(pg.url, autocommit=True) as conn:
            seen = -1
            while time.time() < deadline:
                time.sleep(3)
                n = _one(conn, "SELECT count(DISTINCT device_id) FROM series")
                if n >= args.devices and n == seen:
                    break
                seen = n
        stop("simulate")
        with psycopg.connect(pg.url, autocommit=True) as conn:
            first = _one(conn, "SELECT min(time) FROM telemetry_points")
            n_series = _one(conn, "SELECT count(*) FROM series")
            device, metric = conn.execute(
                "SELECT device_id, metric FROM series WHERE site_id = %s AND metric <> 'door'"
                " ORDER BY device_id, metric LIMIT 1", (SITE,)).fetchone() or ("?", "?")
        step = timedelta(seconds=args.interval)
        end = first - (first - EPOCH) % step
        begin = end - timedelta(days=args.days)
        print(f"bench: {args.devices} devices, {n_series} series, {args.days:g} days every "
              f"{args.interval:g} s backfilled, then {args.rate:,.0f} msg/s offered; "
              f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}")
        rows, seconds = backfill(pg.url, begin, end, step)
        print(f"backfill: {rows:,} points in {seconds:.0f} s ({rows / seconds:,.0f} points/s)")
        scans = backfill_scans(pg.url, begin, end)
        print(f"backfill: {scans:,} scans of {SITE}")
        hours, seconds = roll_all(pg.url)
        print(f"rollups catch up: {hours:,} (series, hour) in {seconds:.0f} s "
              f"({hours / seconds:,.0f}/s, {rows / seconds:,.0f} points/s)")
        with psycopg.connect(pg.url) as conn:
            sizes = {t: _one(conn, "SELECT hypertable_size(%s)", (t,))
                     for t in ("telemetry_points", "telemetry_1m", "telemetry_1h")}
            counts = {t: _one(conn, f"SELECT count(*) FROM {t}")  # noqa: S608 - fixed names
                      for t in ("telemetry_1m", "telemetry_1h")}
        print("sizes: " + ", ".join(f"{t} {sizes[t] / 2**20:,.0f} MiB" for t in sizes)
              + f"; rows: 1m {counts['telemetry_1m']:,}, 1h {counts['telemetry_1h']:,}")
        # the stream again, the rollup job as the rules worker runs it, then the reads
        start("simulate", *simulate)
        worker = RollupWorker(pg.url)
        worker.start()
        time.sleep(args.warmup)
        measure(base, token, device, metric, 3)  # warm the API up; not counted
        n0, t0 = _ingested(pg.url), time.time()
        lat = measure(base, token, device, metric, args.rounds)
        n1, t1 = _ingested(pg.url), time.time()
        report(f"\nthrough the API: {SITE}/{device}/{metric} while the ingest committed "
               f"{(n1 - n0) / (t1 - t0):,.0f} msg/s ({args.rounds} rounds, one client)", lat)
        n0, t0 = _ingested(pg.url), time.time()
        lat = measure_db(pg.url, device, metric, args.rounds)
        n1, t1 = _ingested(pg.url), time.time()
        report(f"\nthe same in the database alone (readback functions, no HTTP) while the "
               f"ingest committed {(n1 - n0) / (t1 - t0):,.0f} msg/s", lat)
        print(f"rollup job meanwhile: {worker.runs} runs, {worker.rolled} hours rolled, "
              f"{worker.busy:.1f} s busy")
        if args.soak > 0:
            soak(pg.url, procs, args.soak)
    except BaseException:
        for log in sorted(state.glob("*.log")):
            print(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace")
                                                   .splitlines()[-15:]), file=sys.stderr)
        raise
    finally:
        if worker is not None:
            worker.stop.set()
        for proc in reversed(list(procs.values())):
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.server.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)


def soak(url: str, procs: dict[str, subprocess.Popen[bytes]], minutes: float) -> None:
    """Minutes more at the rate: each minute the ingest's rate, memory, and the backlogs."""
    print(f"\nsoak: {minutes:g} min; per minute: msg/s committed, ingest backlog (messages "
          f"held), rollup hours pending and settled, RSS of ingest / api, database size")
    print(f"{'min':>4} {'msg/s':>7} {'backlog':>8} {'settled':>8} {'ingest MB':>10} "
          f"{'api MB':>7} {'db MB':>8}")
    n_prev, t_prev = _ingested(url), time.time()
    end = time.time() + minutes * 60
    minute = 0
    while time.time() < end:
        time.sleep(min(60.0, max(0.0, end - time.time())))
        minute += 1
        with psycopg.connect(url) as conn:
            backlog = _one(conn, "SELECT coalesce(sum(backlog), 0) FROM ingest_stats")
            settled = _one(conn, "SELECT count(*) FROM rollup_pending WHERE bucket <="
                                 " now() - interval '61 minutes'")
            db = _one(conn, "SELECT pg_database_size(current_database())")
        n, t = _ingested(url), time.time()
        print(f"{minute:>4} {(n - n_prev) / (t - t_prev):>7,.0f} {backlog:>8,} {settled:>8,} "
              f"{_rss_mb(procs['ingest'].pid):>10.0f} {_rss_mb(procs['api'].pid):>7.0f} "
              f"{db / 2**20:>8,.0f}")
        n_prev, t_prev = n, t


if __name__ == "__main__":
    main()
