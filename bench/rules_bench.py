"""Rules benchmark: fault reading published → its work order committed, under a background stream.

Starts its own PostgreSQL + TimescaleDB and Mosquitto on free loopback ports in a temp dir,
then `caretaker ingest` and `caretaker rules` as processes. A publisher process streams
normal pump readings (vibration, which a rule reads, so every reading goes through the rules
engine) at --rate msg/s. Meanwhile this script injects --faults fault readings, each on its
own pump, and times each from its publish to the NOTIFY its work order's commit sends.
Then --silent heartbeat devices stop one by one; each offline alarm is timed against the
rule's timeout. Prints figures; it is not a test.

    .venv/bin/python bench/rules_bench.py [--rate 5000] [--faults 120] [--silent 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker.migrations import migrate  # noqa: E402
from caretaker.servers import LocalPostgres, free_port  # noqa: E402
from caretaker.settings import MqttTarget  # noqa: E402
from tests.fix_servers import Broker, start_broker  # noqa: E402 - logins like the tests'

SITE = "bench"
BACKGROUND = 500  # pumps streaming normal values
TIMEOUT_S = 10.0  # the offline rule's timeout for the heartbeat devices
ROOT = Path(__file__).resolve().parent.parent


def _client(target: MqttTarget):  # noqa: ANN202
    from tests.fix_servers import paho_client

    c = paho_client(target)  # the broker makes the client id the user name
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    return c


def background(target: MqttTarget, rate: float, stop: Any, out: Any) -> None:
    """Publish normal pump readings round-robin at `rate` msg/s until `stop`."""
    c = _client(target)
    c.connect(target.host, target.port)
    c.loop_start()
    topics = [f"caretaker/v1/{SITE}/devices/bg-{d}/telemetry" for d in range(BACKGROUND)]
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            k = sent % BACKGROUND
            payload = b'{"vibration":%.2f,"flow":%.1f}' % (2.0 + (sent % 40) / 100, 30 + k % 9)
            c.publish(topics[k], payload, qos=1)
            sent += 1
        time.sleep(0.005)
    out.put((sent, time.monotonic() - start))
    c.disconnect()
    c.loop_stop()


def setup(url: str, faults: int, silent: int) -> None:
    """The benchmark site: background pumps, one pump per fault, heartbeat sensors, two rules."""
    from rules.config import load_rules
    from rules.model import parse_rule

    with psycopg.connect(url, row_factory=dict_row) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'Benchmark estate')", (SITE,))
        c.execute("INSERT INTO device_types (id, name) VALUES ('water_pump', 'pump'),"
                  " ('sensor', 'heartbeat sensor')")
        devices = ([(f"bg-{i}", "water_pump") for i in range(BACKGROUND)]
                   + [(f"fp-{i}", "water_pump") for i in range(faults)]
                   + [(f"hb-{i}", "sensor") for i in range(silent)])
        with c.cursor() as cur:
            cur.executemany("INSERT INTO devices (site_id, id, type_id, name) VALUES"
                            " (%s, %s, %s, %s)", [(SITE, d, t, d) for d, t in devices])
        load_rules(c, SITE, [parse_rule(SITE, r) for r in (
            {"id": "vibration-high", "name": "Pump vibration high", "metric": "vibration",
             "device_type": "water_pump", "op": ">=", "threshold": 7.1, "clear": 6.3,
             "severity": "major"},
            {"id": "offline", "name": "Heartbeat lost", "kind": "offline",
             "device_type": "sensor", "timeout": TIMEOUT_S, "severity": "major"},
        )], now=datetime.now(UTC))


class Committed:
    """Listens for work-order commits (NOTIFY caretaker_work_orders) and timestamps them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute("LISTEN caretaker_work_orders")
            self.ready.set()
            while not self.stop.is_set():
                for n in c.notifies(timeout=0.2):
                    self.seen[int(n.payload)] = time.time()

    def devices(self) -> dict[str, float]:
        """device id → commit time of its (first) work order."""
        if not self.seen:
            return {}
        with psycopg.connect(self.url) as c:
            rows = c.execute("SELECT id, device_id FROM work_orders WHERE id = ANY(%s)",
                             (list(self.seen),)).fetchall()
        out: dict[str, float] = {}
        for wo_id, device in rows:
            out.setdefault(device, self.seen[wo_id])
        return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--faults", type=int, default=120)
    parser.add_argument("--silent", type=int, default=10)
    args = parser.parse_args()
    mp.set_start_method("spawn")
    state = Path(tempfile.mkdtemp(prefix="caretaker-rbench-"))
    os.chmod(state, 0o755)
    pg = LocalPostgres(state, free_port())
    broker: Broker | None = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg.start()
        broker = start_broker(state)  # service logins in secrets.json, as `caretaker up` does
        with psycopg.connect(pg.url) as conn:
            migrate(conn)
        setup(pg.url, args.faults, args.silent)
        env = {**os.environ, "CARETAKER_DATABASE_URL": pg.url,
               "CARETAKER_MQTT_URL": broker.url(), "CARETAKER_STATE_DIR": str(state)}
        for name in ("ingest", "rules"):
            log = (state / f"{name}.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "stack.cli", name],
                                          env=env, cwd=ROOT, stdout=log,
                                          stderr=subprocess.STDOUT))
        time.sleep(3.0)  # import, connect, subscribe
        committed = Committed(pg.url)
        committed.thread.start()
        assert committed.ready.wait(10)

        stop_bg, bg_out = mp.Event(), mp.Queue()  # type: ignore[var-annotated]
        bg = mp.Process(target=background, args=(broker.take("simulator"), args.rate, stop_bg,
                                                 bg_out))
        bg.start()
        faults = broker.take("simulator")
        pub = _client(faults)
        pub.connect(faults.host, faults.port)
        pub.loop_start()
        time.sleep(3.0)  # let the background stream settle

        # heartbeat devices: every 0.5 s until each one's planned silence
        hb_last: dict[str, float] = {}
        hb_stop_at = {f"hb-{i}": time.time() + 2.0 + i * 1.5 for i in range(args.silent)}

        def heartbeats() -> None:
            while hb_stop_at and any(t > time.time() for t in hb_stop_at.values()):
                for dev, stop_at in hb_stop_at.items():
                    if time.time() < stop_at:
                        hb_last[dev] = time.time()
                        pub.publish(f"caretaker/v1/{SITE}/devices/{dev}/telemetry",
                                    b'{"temp": 21.5}', qos=1).wait_for_publish(5)
                time.sleep(0.5)

        hb = threading.Thread(target=heartbeats, daemon=True)
        hb.start()

        published: dict[str, float] = {}
        for i in range(args.faults):
            dev = f"fp-{i}"
            info = pub.publish(f"caretaker/v1/{SITE}/devices/{dev}/telemetry",
                               json.dumps({"vibration": 9.3}), qos=1)
            published[dev] = time.time()
            info.wait_for_publish(5)
            time.sleep(0.2)
        deadline = time.time() + 60
        while time.time() < deadline:
            done = committed.devices()
            if all(d in done for d in published) and all(
                    f"hb-{i}" in done for i in range(args.silent)):
                break
            time.sleep(0.2)
        hb.join(5)
        stop_bg.set()
        sent, seconds = bg_out.get(timeout=60)
        bg.join(30)
        done = committed.devices()
        committed.stop.set()
        pub.disconnect()
        pub.loop_stop()

        lat = [done[d] - t for d, t in published.items() if d in done]
        print(f"rules bench: background {sent / seconds:,.0f} msg/s of pump readings over "
              f"{BACKGROUND} devices (every one evaluated by the vibration rule), "
              f"{os.cpu_count()} CPUs; ingest + rules workers as processes")
        print(f"fault reading published -> work order committed, {len(lat)}/{len(published)} "
              f"faults: p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms, mean {statistics.mean(lat) * 1000:.0f} ms "
              f"(target p99 <= 1000 ms)")
        with psycopg.connect(pg.url) as c:
            raised = {d: t.timestamp() for d, t in c.execute(
                "SELECT device_id, raised_at FROM alarms WHERE device_id LIKE 'fp-%%'")}
        picked = [raised[d] - t for d, t in published.items() if d in raised]
        work = [done[d] - raised[d] for d in published if d in raised and d in done]
        print(f"  of which published -> taken by the rules worker (ingest commit + outbox "
              f"poll): p50 {pct(picked, 0.5) * 1000:.0f} ms, p99 {pct(picked, 0.99) * 1000:.0f} ms;"
              f" taken -> work order committed: p50 {pct(work, 0.5) * 1000:.0f} ms, "
              f"p99 {pct(work, 0.99) * 1000:.0f} ms")
        with psycopg.connect(pg.url) as c:
            stats = c.execute("SELECT lag_buckets FROM ingest_stats").fetchall()
        if stats:
            from ingest.metrics import LAG_BOUNDS, quantile

            lag = [sum(col) for col in zip(*(r[0] for r in stats), strict=True)]
            print(f"  (the ingest's own receive -> commit lag, all messages: p50 "
                  f"{quantile(LAG_BOUNDS, lag, 0.5) * 1000:.0f} ms, p99 "
                  f"{quantile(LAG_BOUNDS, lag, 0.99) * 1000:.0f} ms)")
        silent = [done[d] - hb_last[d] for d in hb_last if d in done]
        if silent:
            print(f"device silent -> offline alarm (timeout {TIMEOUT_S:.0f} s), "
                  f"{len(silent)}/{args.silent} devices: min {min(silent):.2f} s, "
                  f"p50 {pct(silent, 0.5):.2f} s, max {max(silent):.2f} s "
                  f"(target <= {TIMEOUT_S + 2:.0f} s)")
        with psycopg.connect(pg.url) as c:
            alarms, wos = c.execute("SELECT (SELECT count(*) FROM alarms),"
                                    " (SELECT count(*) FROM work_orders)").fetchone()  # type: ignore[misc]
        print(f"alarms {alarms}, work orders {wos} (expected {args.faults + args.silent} each)")
    finally:
        for proc in procs:
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
