"""Nothing acknowledged is lost when the embedded broker restarts gracefully (SIGTERM, then
started again on the same port and state), whatever the moment, also with a backlog waiting."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.fix_servers import Broker, wait_for_login
from tests.ingest.helpers import (
    Publisher,
    ingest_settings,
    prepare_session,
    running_worker,
    wait_until,
)
from tests.ingest.test_resilience import _add_site, _count, _exactly_once, _stream

pytestmark = pytest.mark.e2e
N = 20_000


def restart(broker: Broker) -> None:
    """SIGTERM the broker (it saves its store), start it again on the same port and state."""
    broker.server.stop()
    broker.server.start()
    wait_for_login(broker.target("caretaker-simulator"))


def publish_in_background(broker: Broker, stream: list[tuple[str, bytes]]
                          ) -> tuple[threading.Thread, list[int]]:
    """Publish at QoS 1 from a thread (paho reconnects and resends what was not acked)."""
    sent: list[int] = [0]

    def run() -> None:
        pub = Publisher(broker.target("caretaker-simulator"))
        pub.client.reconnect_delay_set(min_delay=1, max_delay=1)
        for topic, payload in stream:
            pub.publish(topic, payload)
            sent[0] += 1
            if sent[0] % 500 == 0:
                time.sleep(0.02)  # a stream, not a burst: restarts land in the middle of it
        pub.close(timeout=120)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, sent


def test_graceful_restarts_mid_stream_lose_nothing(database: str, mqtt: Broker) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    settings = ingest_settings(database, mqtt)
    _add_site(database, "restart")  # a topic naming an unknown site is a dead letter
    with running_worker(settings):
        thread, sent = publish_in_background(mqtt, _stream("restart", N))
        for at in sorted(rng.uniform(0.05, 0.9) for _ in range(3)):
            assert wait_until(lambda at=at: sent[0] >= at * N, timeout=60, every=0.005)
            restart(mqtt)
        thread.join(120)
        assert not thread.is_alive()
        assert wait_until(lambda: _count(database) >= N, timeout=60), f"seed {seed}"
    _exactly_once(database, N)


def test_restart_with_a_backlog_waiting_loses_nothing(database: str, mqtt: Broker) -> None:
    settings = ingest_settings(database, mqtt)
    _add_site(database, "backlog")
    prepare_session(settings)  # the ingest's session exists; the ingest is stopped
    thread, sent = publish_in_background(mqtt, _stream("backlog", N))
    assert wait_until(lambda: sent[0] >= N // 2, timeout=60, every=0.005)
    restart(mqtt)  # while publishing
    thread.join(120)
    restart(mqtt)  # with the whole backlog queued for the ingest
    assert _count(database) == 0
    with running_worker(settings):
        assert wait_until(lambda: _count(database) >= N // 4, timeout=60, every=0.005)
        restart(mqtt)  # and once more while the ingest drains the backlog
        assert wait_until(lambda: _count(database) >= N, timeout=60)
    _exactly_once(database, N)
