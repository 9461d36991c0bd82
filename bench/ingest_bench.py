"""Ingest benchmark: publish → committed rows at QoS 1, against a bare-subscriber ceiling.

Starts its own PostgreSQL + TimescaleDB and Mosquitto on free loopback ports in a temp dir.
500 devices, 3 values per message, several publisher processes. Two measurements each for
the ceiling (a paho subscriber that only counts) and for the full ingest (`caretaker ingest`):
  live  - publishers and consumer run at the same time (they share the 2 cores);
  drain - the stream is queued at the broker first, then the consumer starts.
Also paced runs (a thin stream at 3,000 msg/s and a busy one at 5,000 msg/s) with the CPU
spent per message by the ingest process(es) and by the PostgreSQL server (all its processes,
exited ones included), and with `--bytes` the stored size per telemetry point (table +
indexes, from hypertable_size) after all runs. Run on the same commit's schema and ingest;
copy this file into an older tree to measure that tree the same way.
Prints figures; it is not a test.

    .venv/bin/python bench/ingest_bench.py [--messages 200000] [--publishers 3] [--bytes]
    .venv/bin/python bench/ingest_bench.py --phases paced --paced-rate 3000,5000 --bytes
    .venv/bin/python bench/ingest_bench.py --phases write --bytes   # no MQTT: the write path
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
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
from caretaker.settings import MqttTarget  # noqa: E402
from ingest.metrics import LAG_BOUNDS, quantile  # noqa: E402
from tests.fix_servers import Broker, start_broker  # noqa: E402 - logins like the tests'

DEVICES = 500
TELEMETRY = "caretaker/v1/+/devices/+/telemetry"


def _client(target: MqttTarget, *, clean: bool = True,  # noqa: ANN202
            receive_maximum: int | None = None):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from tests.fix_servers import paho_client

    c = paho_client(target)  # the broker makes the client id the user name
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0 if clean else 3600
    if receive_maximum:
        props.ReceiveMaximum = receive_maximum
    return c, props


def publisher(target: MqttTarget, site: str, devices: list[int], count: int, go: mp.Event,
              done: mp.Queue, rate: float = 0.0) -> None:
    """Publish `count` messages round-robin over `devices`, ts = publish time (ms).

    With `rate` (messages/s of this process) the publisher paces itself.
    """
    c, props = _client(target)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    acked = [0]
    finished = threading.Event()

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] == count:
            finished.set()

    c.on_publish = on_publish
    c.connect(target.host, target.port, properties=props)
    c.loop_start()
    topics = [f"caretaker/v1/{site}/devices/dev-{d}/telemetry" for d in devices]
    last = dict.fromkeys(range(len(devices)), 0)
    go.wait()
    start = time.time()
    n = len(devices)
    for i in range(count):
        if rate and i % 50 == 0:
            ahead = start + i / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
        k = i % n
        ts = max(time.time_ns() // 1_000_000, last[k] + 1)
        last[k] = ts
        payload = (b'{"ts":%d,"values":{"pressure":%.3f,"flow":%.2f,"current":%.2f}}'
                   % (ts, 0.4 + (i % 100) / 1000, 12.0 + (i % 50) / 10, 30.0 + (i % 7)))
        c.publish(topics[k], payload, qos=1)
    finished.wait(600)
    done.put((start, time.time()))
    c.disconnect()
    c.loop_stop()


def counter(target: MqttTarget, expected: int, ready: mp.Event, out: mp.Queue) -> None:
    """The ceiling: a bare paho subscriber (QoS 1, auto-ack) that only counts."""
    from paho.mqtt.subscribeoptions import SubscribeOptions

    c, props = _client(target, clean=False, receive_maximum=50000)
    n = [0]
    first = [0.0]
    finished = threading.Event()

    def on_message(*_: object) -> None:
        n[0] += 1
        if n[0] == 1:
            first[0] = time.time()
        if n[0] >= expected:
            finished.set()

    c.on_message = on_message
    c.on_subscribe = lambda *_: ready.set()
    c.on_connect = lambda cl, *_: cl.subscribe(TELEMETRY, options=SubscribeOptions(qos=1))
    c.connect(target.host, target.port, clean_start=False, properties=props)
    c.loop_start()
    finished.wait(900)
    out.put((first[0], time.time(), n[0]))
    c.disconnect()
    c.loop_stop()


def prepare_counter_session(target: MqttTarget) -> None:
    """Create the counter's persistent subscription, offline (for the drain run)."""
    from paho.mqtt.subscribeoptions import SubscribeOptions

    c, props = _client(target, clean=False)
    ok = threading.Event()
    c.on_subscribe = lambda *_: ok.set()
    c.on_connect = lambda cl, *_: cl.subscribe(TELEMETRY, options=SubscribeOptions(qos=1))
    c.connect(target.host, target.port, clean_start=True, properties=props)
    c.loop_start()
    assert ok.wait(10)
    c.disconnect()
    c.loop_stop()


def publish_all(broker: Broker, site: str, messages: int, publishers: int,
                rate: float = 0.0) -> tuple[float, float]:
    """Run the publisher processes; (first publish start, last acked) wall times."""
    go, done = mp.Event(), mp.Queue()
    per = messages // publishers
    procs = []
    for p in range(publishers):
        devs = list(range(p, DEVICES, publishers))
        proc = mp.Process(target=publisher, args=(broker.take("simulator"), site, devs, per, go,
                                                  done, rate / publishers))
        proc.start()
        procs.append(proc)
    time.sleep(1.0)  # let them connect
    go.set()
    results = [done.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    return min(r[0] for r in results), max(r[1] for r in results)


def run_ceiling(broker: Broker, messages: int, publishers: int, *, drain: bool
                ) -> dict[str, float]:
    login = broker.add("service", "ingest", username=f"bench-count-{uuid.uuid4().hex[:6]}")
    total = messages // publishers * publishers
    ready, out = mp.Event(), mp.Queue()
    site = f"c{uuid.uuid4().hex[:6]}"
    if drain:
        prepare_counter_session(login)
        t0, t1 = publish_all(broker, site, total, publishers)
        start = time.time()
        proc = mp.Process(target=counter, args=(login, total, ready, out))
        proc.start()
        first, last, n = out.get(timeout=900)
        proc.join()
        return {"messages": n, "seconds": last - start, "rate": n / (last - start)}
    proc = mp.Process(target=counter, args=(login, total, ready, out))
    proc.start()
    assert ready.wait(20)
    t0, t1 = publish_all(broker, site, total, publishers)
    first, last, n = out.get(timeout=900)
    proc.join()
    return {"messages": n, "seconds": last - t0, "rate": n / (last - t0),
            "publish_rate": total / (t1 - t0)}


def _received(conn: psycopg.Connection, workers: list[str]) -> int:
    row = conn.execute("SELECT coalesce(sum(messages), 0) FROM ingest_stats"
                       " WHERE worker = ANY(%s)", (workers,)).fetchone()
    return int(row[0]) if row else 0


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int], *, children: bool = False) -> float:
    """User + system CPU of the processes (with `children`: also of their exited children)."""
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if children:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime (waited-for children)
    return total / TICK


def _postgres_cpu(data_dir: Path) -> float:
    """CPU seconds of the whole PostgreSQL server so far (postmaster, backends, workers)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    tree = _tree(postmaster)
    return _cpu_seconds(tree[:1], children=True) + _cpu_seconds(tree[1:])


def points_size(url: str) -> dict[str, float]:
    """Bytes per stored telemetry point (hypertable_size / rows) and the side tables' sizes."""
    with psycopg.connect(url) as c:
        compact = c.execute("SELECT to_regclass('telemetry_points') IS NOT NULL").fetchone()
        table = "telemetry_points" if compact and compact[0] else "telemetry"
        size, rows = c.execute(
            f"SELECT hypertable_size('{table}'), (SELECT count(*) FROM {table})"  # noqa: S608
        ).fetchone()
        out = {"table": table, "rows": rows, "bytes": size, "per_point": size / max(rows, 1)}
    try:
        from caretaker.retention import compact_telemetry
    except ImportError:  # a tree without compaction
        return out
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
        far = datetime.now(UTC) + timedelta(days=2)  # as if every chunk had closed
        compact_telemetry(c, now=far, limit=1000)
        out["compacted"] = c.execute(f"SELECT hypertable_size('{table}') AS b").fetchone()["b"]
        if table == "telemetry_points":
            for side in ("series", "latest_readings", "rollup_pending"):
                out[side] = c.execute(
                    "SELECT pg_total_relation_size(%s::regclass) AS b", (side,)).fetchone()["b"]
    return out


def _tree(pid: int) -> list[int]:
    """The process and its children (`--workers N` runs N child processes)."""
    out = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            out += _tree(int(child))
    return out


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ingest(url: str, broker: Broker, messages: int, publishers: int, *, drain: bool,
               state: Path, rate: float = 0.0, workers: int = 1,
               pg_data: Path | None = None) -> dict[str, float]:
    total = messages // publishers * publishers
    client_id = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    group = f"g{uuid.uuid4().hex[:6]}"
    # No login in the URL: each worker finds its own (`<client id>-<n>`) in secrets.json.
    env = {**os.environ, "CARETAKER_DATABASE_URL": url, "CARETAKER_MQTT_URL": broker.url(),
           "CARETAKER_INGEST_CLIENT_ID": client_id, "CARETAKER_INGEST_SHARE_GROUP": group,
           "CARETAKER_INGEST_WORKERS": str(workers), "CARETAKER_STATE_DIR": str(state)}
    site = f"i{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url) as c:  # a topic of an unknown site is a dead letter
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'Benchmark')", (site,))
    # the worker's session and subscription exist before anything is published
    from ingest.mqtt import Subscriber

    for w in range(workers):
        login = broker.add("service", "ingest", username=f"{client_id}-{w}")
        sub = Subscriber(login, client_id=login.username or "", receive_maximum=100,
                         group=group if workers > 1 else None)
        sub.start()
        assert sub.subscribed.wait(10)
        sub.stop()
    log = (state / f"ingest-{uuid.uuid4().hex[:6]}.log").open("wb")
    cmd = [sys.executable, "-m", "stack.cli", "ingest", "--workers", str(workers)]
    cwd = Path(__file__).resolve().parent.parent
    proc = None
    poll = psycopg.connect(url, autocommit=True)  # one connection: polling costs little CPU
    if not drain:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(3.0)  # import + connect
        cpu0 = (_cpu_seconds(_tree(proc.pid)), _postgres_cpu(pg_data) if pg_data else 0.0)
        t0, t1 = publish_all(broker, site, total, publishers, rate)
    else:
        publish_all(broker, site, total, publishers)
        t0 = time.time()
        cpu0 = (0.0, _postgres_cpu(pg_data) if pg_data else 0.0)  # startup counted: small
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 900
    names = [f"{client_id}-{w}" for w in range(workers)]
    while _received(poll, names) < total and time.time() < deadline:
        time.sleep(0.2)
    t_end = time.time()
    cpu_ingest = _cpu_seconds(_tree(proc.pid)) - cpu0[0]
    cpu_pg = (_postgres_cpu(pg_data) - cpu0[1]) if pg_data else float("nan")
    poll.close()
    time.sleep(1.5)  # the idle stats flush carries the last histogram observations
    rss = sum(_peak_rss_mb(pid) for pid in _tree(proc.pid))
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log.close()
    with psycopg.connect(url) as c:
        rows, distinct = c.execute(
            "SELECT count(*), count(DISTINCT (device_id, metric, time)) FROM telemetry"
            " WHERE site_id = %s", (site,)).fetchone()
        stats = c.execute("SELECT lag_buckets, messages, batches, batch_seconds_sum"
                          " FROM ingest_stats WHERE worker = ANY(%s)", (names,)).fetchall()
    lag = [sum(col) for col in zip(*(r[0] for r in stats), strict=True)]
    received = [sum(r[1] for r in stats), sum(r[2] for r in stats)]
    busy = sum(r[3] for r in stats) / workers
    expected_rows = total * 3
    out = {"messages": total, "seconds": t_end - t0, "rate": total / (t_end - t0),
           "points_rate": distinct / (t_end - t0), "lost": expected_rows - distinct,
           "duplicated": rows - distinct, "received": received[0], "batches": received[1],
           "p50": quantile(LAG_BOUNDS, lag, 0.5), "p99": quantile(LAG_BOUNDS, lag, 0.99),
           "rss_mb": rss, "writer_busy": busy / (t_end - t0),
           "cpu_ingest_ms": cpu_ingest / total * 1000, "cpu_pg_ms": cpu_pg / total * 1000}
    if not drain:
        out["publish_rate"] = total / (t1 - t0)
    return out


def run_write_path(url: str, batch_msgs: int, batches: int, start_ms: int) -> dict[str, float]:
    """The write path alone (no MQTT, one process): parse + COPY text + write_batch of
    `batches` batches of `batch_msgs` messages (500 devices round robin, 3 values, 10 s
    apart per device); CPU per message of this process and of its database backend."""
    import inspect

    from ingest import store
    from ingest.batch import Message, assemble

    series = store.SeriesIds() if hasattr(store, "SeriesIds") else None
    with_ids = "ids" in inspect.signature(store.copy_text).parameters
    k = 0

    def batch() -> list[Message]:
        nonlocal k
        out = []
        for _ in range(batch_msgs):
            d = k % DEVICES
            ts = start_ms + (k // DEVICES) * 10_000 + d
            out.append(Message(f"caretaker/v1/wp/devices/dev-{d}/telemetry",
                               b'{"ts":%d,"values":{"pressure":%.3f,"flow":%.2f,"current":%.2f}}'
                               % (ts, 0.4 + k % 100 / 1000, 12 + k % 50 / 10, 30 + k % 7), ts))
            k += 1
        return out

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('wp', 'Write path')"
                     " ON CONFLICT DO NOTHING")
        backend = conn.execute("SELECT pg_backend_pid() AS p").fetchone()["p"]

        def one() -> None:
            b = assemble(batch())
            b.copy_data = (store.copy_text(b.telemetry, series.known) if with_ids and series
                           else store.copy_text(b.telemetry))  # type: ignore[call-arg]
            with conn.transaction():
                if series is not None:
                    store.write_batch(conn, b, event_metrics=(), series=series)
                else:
                    store.write_batch(conn, b, event_metrics=())
            if series is not None:
                series.commit()

        for _ in range(20):  # warm-up: devices and series exist
            one()
        c0, b0 = time.process_time(), _cpu_seconds([backend])
        for _ in range(batches):
            one()
        c1, b1 = time.process_time(), _cpu_seconds([backend])
    n = batch_msgs * batches
    return {"client_ms": (c1 - c0) / n * 1000, "backend_ms": (b1 - b0) / n * 1000}


def _cpu_line(i: dict[str, float]) -> str:
    return (f"  CPU per message: ingest {i['cpu_ingest_ms']:.3f} ms + PostgreSQL "
            f"{i['cpu_pg_ms']:.3f} ms = {i['cpu_ingest_ms'] + i['cpu_pg_ms']:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="caretaker ingest --workers N")
    parser.add_argument("--paced-rate", default="3000,5000",
                        help="msg/s of the paced runs (below saturation), comma-separated")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--phases", default="live,drain,paced",
                        help="which of live, drain, paced, write (the write path alone) to run")
    parser.add_argument("--bytes", action="store_true",
                        help="print the bytes per stored telemetry point after the runs")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    mp.set_start_method("spawn")
    state = Path(tempfile.mkdtemp(prefix="caretaker-bench-"))
    os.chmod(state, 0o755)
    pg = LocalPostgres(state, free_port())
    broker: Broker | None = None
    try:
        pg.start()
        broker = start_broker(state)
        with psycopg.connect(pg.url) as conn:
            migrate(conn)
        print(f"bench: {args.messages} messages x 3 values, {DEVICES} devices, QoS 1, "
              f"{args.publishers} publisher processes, {args.workers} ingest worker(s), "
              f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}")
        if "write" in phases:  # thin (3,000 msg/s x 50 ms) and busy batch sizes
            start_ms = int(time.time() * 1000) - 3 * 86_400_000
            for size in (150, 250, 1000):
                w = run_write_path(pg.url, size, max(40, 60_000 // size), start_ms)
                start_ms += 86_400_000  # each size in a day (chunk) of its own
                print(f"\n[write path] batches of {size} messages: process {w['client_ms']:.4f}"
                      f" ms + database backend {w['backend_ms']:.4f} ms = "
                      f"{w['client_ms'] + w['backend_ms']:.4f} ms CPU per message")
        for drain in (False, True):
            mode = "drain" if drain else "live"
            if mode not in phases:
                continue
            c = run_ceiling(broker, args.messages, args.publishers, drain=drain)
            i = run_ingest(pg.url, broker, args.messages, args.publishers, drain=drain,
                           state=state, workers=args.workers, pg_data=pg.data)
            pub = f" (publishers alone reached {c['publish_rate']:,.0f} msg/s)" if not drain else ""
            what = ("backlog queued at the broker first, then the consumer starts" if drain
                    else "publishers and consumer at once")
            print(f"\n[{mode}] {what}{pub}")
            print(f"  ceiling (bare paho subscriber): {c['rate']:>9,.0f} msg/s "
                  f"({c['messages']} msgs in {c['seconds']:.1f}s)")
            print(f"  ingest (publish->commit):       {i['rate']:>9,.0f} msg/s, "
                  f"{i['points_rate']:,.0f} points/s ({i['messages']} msgs in {i['seconds']:.1f}s,"
                  f" {i['batches']} batches, database writer busy {i['writer_busy']:.0%})")
            print(f"  rows lost: {i['lost']}, rows duplicated: {i['duplicated']}, "
                  f"messages received by the ingest: {i['received']}")
            if not drain:
                print(f"  publish->commit latency: p50 {i['p50'] * 1000:.0f} ms, "
                      f"p99 {i['p99'] * 1000:.0f} ms (from the ingest's lag histogram)")
            print(_cpu_line(i))
            print(f"  peak RSS of the ingest process: {i['rss_mb']:.0f} MB")
            print(f"  ratio ingest / ceiling: {i['rate'] / c['rate']:.2f}")
        # latency below saturation: a paced stream, where queueing at the broker does not
        # dominate the figure as it does when publishers outrun the consumer
        for rate in ([float(r) for r in args.paced_rate.split(",")] if "paced" in phases
                     else []):
            paced = int(rate * args.paced_seconds)
            i = run_ingest(pg.url, broker, paced, args.publishers, drain=False, state=state,
                           rate=rate, workers=args.workers, pg_data=pg.data)
            print(f"\n[paced] {rate:,.0f} msg/s offered for {paced / rate:.0f}s")
            print(f"  ingest: {i['rate']:,.0f} msg/s committed, rows lost: {i['lost']}, "
                  f"duplicated: {i['duplicated']}, {i['batches']} batches "
                  f"({i['received'] / max(i['batches'], 1):.0f} msgs each)")
            print(f"  publish->commit latency: p50 {i['p50'] * 1000:.0f} ms, "
                  f"p99 {i['p99'] * 1000:.0f} ms (from the ingest's lag histogram)")
            print(_cpu_line(i))
            print(f"  peak RSS of the ingest process: {i['rss_mb']:.0f} MB")
        if args.bytes:
            b = points_size(pg.url)
            side = ", ".join(f"{k} {b[k] / 1024:,.0f} kB" for k in
                             ("series", "latest_readings", "rollup_pending") if k in b)
            print(f"\n[bytes] {b['table']}: {b['rows']:,} points, {b['bytes'] / 1e6:,.1f} MB"
                  f" (table + indexes) = {b['per_point']:.1f} bytes per point"
                  + (f"; side tables: {side}" if side else ""))
            if "compacted" in b:
                print(f"  after compaction (chunk indexes rebuilt): "
                      f"{b['compacted'] / max(b['rows'], 1):.1f} bytes per point")
    finally:
        if broker is not None:
            broker.server.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
