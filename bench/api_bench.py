"""API benchmark: 50 concurrent clients reading lists while ~5,000 msg/s are ingested.

Starts its own PostgreSQL + TimescaleDB and Mosquitto on free loopback ports in a temp dir,
then `caretaker ingest`, `caretaker api` and `caretaker simulate` (a generated fleet at the
given rate) as processes. After a warm-up, N asyncio clients each read the list endpoints in
turn for the measured time; prints per endpoint the requests, errors (anything not 200,
or no answer), and p50/p95/p99 latency, and the ingest rate reached meanwhile.
Prints figures; it is not a test.

    .venv/bin/python bench/api_bench.py [--clients 50] [--rate 5000] [--seconds 30] [--think 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker.migrations import migrate  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from caretaker.tokens import create_token  # noqa: E402
from simulators.fleet import DEVICES_PER_SITE  # noqa: E402
from tests.fix_servers import broker_dir, start_broker  # noqa: E402 - logins like the tests'

ROOT = Path(__file__).resolve().parent.parent


def endpoints(sites: list[str]) -> dict[str, list[str]]:
    """The list reads, by name; each client cycles through them (and through the sites)."""
    return {
        "work-orders": ["/work-orders", "/work-orders?state=open"],
        "alarms": ["/alarms", "/alarms?state=active"],
        "devices": [f"/devices?site={s}" for s in sites] + ["/devices?limit=1000"],
        "sites": ["/sites"],
        "scans": ["/scans"],
        "runs": ["/runs"],
        "gaps": ["/gaps"],
        "dead-letters": ["/dead-letters"],
        "telemetry": [f"/telemetry?site={s}&device=pump-0001&metric=outlet_pressure"
                      f"&limit=200" for s in sites],
        "telemetry-5m": [f"/telemetry?site={s}&device=pump-0001&bucket=5m" for s in sites],
        "telemetry-latest": [f"/telemetry/latest?site={s}&within=1h" for s in sites],
    }


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _client(n: int, base: str, token: str, plan: list[tuple[str, str]], until: float,
                  results: dict[str, list[float]], errors: dict[str, list[str]],
                  think: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        i = n  # clients start at different places of the plan
        while time.monotonic() < until:
            name, path = plan[i % len(plan)]
            i += 1
            t0 = time.monotonic()
            try:
                r = await client.get(path)
                ok = r.status_code == 200
                why = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - t0
            (results if ok else errors).setdefault(name, []).append(  # type: ignore[arg-type]
                elapsed if ok else why)
            if think:  # a console refreshing now and then, not a client in a tight loop
                await asyncio.sleep(think)


async def load(base: str, token: str, clients: int, seconds: float, sites: list[str],
               think: float = 0.0) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    plan = [(name, path) for name, paths in endpoints(sites).items() for path in paths]
    results: dict[str, list[float]] = {}
    errors: dict[str, list[str]] = {}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(n, base, token, plan, until, results, errors, think)
                           for n in range(clients)))
    return results, errors


def _ingested(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT coalesce(sum(messages), 0) FROM ingest_stats").fetchone()
    return int(row[0]) if row else 0


def _wait_http(url: str, deadline: float) -> None:
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5000,
                        help="msg/s the simulator offers (0: no stream, the API alone)")
    parser.add_argument("--devices", type=int, default=1000, help="simulated devices")
    parser.add_argument("--seconds", type=float, default=30, help="measured time")
    parser.add_argument("--warmup", type=float, default=15, help="seconds of ingest first")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each client waits between its requests (0: back to back)")
    args = parser.parse_args()

    state = broker_dir()  # the mosquitto user must reach it
    pg = LocalPostgres(state, free_port())
    procs: list[subprocess.Popen[bytes]] = []
    broker = None
    try:
        pg.start()
        broker = start_broker(state)  # with the service logins `caretaker up` creates
        with psycopg.connect(pg.url) as conn:
            migrate(conn)
        sites = [f"sim-site-{i:03d}" for i in range(1, -(-args.devices // DEVICES_PER_SITE) + 1)]
        with psycopg.connect(pg.url) as conn:
            for site in sites:  # configured sites: a topic naming an unknown one is refused
                conn.execute("INSERT INTO sites (id, name, timezone) VALUES (%s, %s, %s)",
                             (site, site, "Asia/Shanghai"))
            token = create_token(conn, role="admin", name="api bench", expires="never")
        api_port = free_port()
        # No login in the URL: the ingest and the simulator each find their own service login
        # in the state directory's secrets.json, as under `caretaker up`.
        env = {**os.environ, "CARETAKER_DATABASE_URL": pg.url,
               "CARETAKER_MQTT_URL": broker.url(), "CARETAKER_STATE_DIR": str(state)}

        def start(*args_: str) -> None:
            log = (state / f"{args_[0]}.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "stack.cli", *args_], env=env,
                                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

        start("ingest")
        start("api", "--port", str(api_port))
        base = f"http://127.0.0.1:{api_port}/api/v1"
        _wait_http(f"{base}/health", time.time() + 60)
        if args.rate > 0:
            start("simulate", "--devices", str(args.devices), "--rate", str(args.rate))
        print(f"bench: {args.clients} clients ({args.think:g} s between a client's requests), "
              f"{len(endpoints(sites))} list endpoints, "
              f"simulator offering {args.rate:,.0f} msg/s from {args.devices} devices, "
              f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}")
        time.sleep(args.warmup)  # the stream reaches its rate; tables fill a little
        asyncio.run(load(base, token, args.clients, 3, sites))  # warm the API up; not counted
        n0, t0 = _ingested(pg.url), time.time()
        results, errors = asyncio.run(load(base, token, args.clients, args.seconds, sites,
                                           args.think))
        n1, t1 = _ingested(pg.url), time.time()
        print(f"ingest meanwhile: {(n1 - n0) / (t1 - t0):,.0f} msg/s committed "
              f"({n1} messages in all)")
        print(f"\n{'endpoint':<18} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p99 ms':>8} {'max ms':>8}")
        every: list[float] = []
        for name in endpoints(sites):
            lat = sorted(results.get(name, []))
            every += lat
            print(f"{name:<18} {len(lat) + len(errors.get(name, [])):>8} "
                  f"{len(errors.get(name, [])):>6} {_quantile(lat, .5) * 1000:>8.0f} "
                  f"{_quantile(lat, .95) * 1000:>8.0f} {_quantile(lat, .99) * 1000:>8.0f} "
                  f"{(lat[-1] if lat else float('nan')) * 1000:>8.0f}")
        every.sort()
        n_err = sum(len(e) for e in errors.values())
        print(f"{'all':<18} {len(every) + n_err:>8} {n_err:>6} {_quantile(every, .5) * 1000:>8.0f}"
              f" {_quantile(every, .95) * 1000:>8.0f} {_quantile(every, .99) * 1000:>8.0f} "
              f"{(every[-1] if every else float('nan')) * 1000:>8.0f}")
        print(f"throughput: {(len(every) + n_err) / args.seconds:,.0f} requests/s")
        for name, whys in errors.items():
            print(f"errors of {name}: {sorted(set(whys))[:5]}")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.server.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)




if __name__ == "__main__":
    main()
