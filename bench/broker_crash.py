"""Broker crash benchmark: what kill -9 of the embedded Mosquitto loses of a waiting backlog.

Mosquitto keeps messages in memory and writes its whole store every `autosave_interval`
seconds (and on a graceful stop). A crash loses what arrived since the last save. For each
interval: the ingest's persistent session exists but the ingest is away; N messages are
published at QoS 1 (every one acknowledged by the broker); the broker is killed with SIGKILL
right after the last acknowledgement, or after waiting one interval more; it is started
again on the same state and the ingest's session is drained and counted.
Prints figures; it is not a test.

    .venv/bin/python bench/broker_crash.py [--messages 50000] [--intervals 30,5,1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from caretaker.mqtt_credentials import SIMULATOR_USER, ingest_username  # noqa: E402
from ingest.mqtt import Subscriber  # noqa: E402
from simulators.publisher import Publisher  # noqa: E402
from tests.fix_servers import Broker, start_broker  # noqa: E402 - logins like the tests'


def subscriber(broker: Broker) -> Subscriber:
    login = broker.target(ingest_username(0))
    return Subscriber(login, client_id=login.username or "", receive_maximum=10000)


def publish(broker: Broker, n: int) -> float:
    """Publish n acknowledged QoS 1 messages; the rate in msg/s."""
    pub = Publisher(broker.target(SIMULATOR_USER), window=1000)
    started = time.monotonic()
    for i in range(n):
        pub.publish(f"caretaker/v1/crash/devices/d{i % 100}/telemetry", b'{"seq": %d}' % i)
    assert pub.flush(120), "the broker did not acknowledge everything"
    rate = n / (time.monotonic() - started)
    pub.close()
    return rate


def drain(broker: Broker, idle: float = 2.0) -> int:
    """Messages waiting in the ingest's session (distinct), acknowledged as they are read."""
    sub = subscriber(broker)
    sub.start()
    seen: set[bytes] = set()
    last = time.monotonic()
    while time.monotonic() - last < idle:
        items = sub.inbox.take(5000, 0.2)
        if items:
            last = time.monotonic()
            seen.update(it.message.payload for it in items)
            sub.ack(items)
    sub.stop()
    return len(seen)


def run(interval: int, n: int, wait: float) -> tuple[int, float]:
    """(messages lost, publish rate) for one crash."""
    state = Path(tempfile.mkdtemp(prefix="caretaker-crash-"))
    os.chmod(state, 0o755)
    broker = start_broker(state, autosave_interval=interval)
    try:
        sub = subscriber(broker)  # the session and its subscription, then away
        sub.start()
        assert sub.subscribed.wait(10)
        sub.stop()
        rate = publish(broker, n)
        time.sleep(wait)
        pid = broker.server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        broker.server.stop()
        broker.server.start()
        return n - drain(broker), rate
    finally:
        broker.server.stop()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--intervals", default="30,5,1", help="autosave_interval values (s)")
    args = parser.parse_args()
    print(f"bench: {args.messages} acknowledged QoS 1 messages waiting for the ingest, then "
          f"kill -9 of the broker; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for interval in (int(v) for v in args.intervals.split(",")):
        lost_now, rate = run(interval, args.messages, 0.0)
        lost_later, _ = run(interval, args.messages, interval + 1.0)
        print(f"  autosave_interval {interval:>3} s: killed right after the last ack lost "
              f"{lost_now:>6} ({lost_now / args.messages:.0%}); killed {interval + 1} s later "
              f"lost {lost_later}; publish rate {rate:,.0f} msg/s")


if __name__ == "__main__":
    main()
