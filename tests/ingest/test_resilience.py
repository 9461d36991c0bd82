"""Nothing lost, nothing twice: kill -9 mid-stream, database restart, two shared workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from caretaker.migrations import migrate
from caretaker.servers import LocalPostgres, free_port
from caretaker.settings import CHECKOUT
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    forget_session,
    ingest_settings,
    prepare_session,
    publish,
    running_worker,
    settings_env,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _count(url: str, sql: str = "SELECT count(*) FROM telemetry") -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as c:
            return int(c.execute(sql).fetchone()[0])  # type: ignore[index]
    except psycopg.OperationalError:
        return -1


def _stream(site: str, n: int, devices: int = 50) -> list[tuple[str, bytes]]:
    base = int(time.time() * 1000) - 3_600_000
    return [(f"caretaker/v1/{site}/devices/d{i % devices}/telemetry",
             f'{{"ts": {base + i}, "values": {{"seq": {i}}}}}'.encode()) for i in range(n)]


def _add_site(url: str, site: str) -> None:
    with psycopg.connect(url) as c:  # a topic of an unknown site is a dead letter
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'S')", (site,))


def _ingest(settings_env_: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stack.cli", "ingest", *args],
                                env={**os.environ, **settings_env_}, cwd=CHECKOUT,
                                stdout=out, stderr=subprocess.STDOUT)


def _exactly_once(url: str, n: int) -> None:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT count(*), count(DISTINCT value), min(value), max(value)"
                        " FROM telemetry WHERE metric = 'seq'").fetchone()
    assert row == (n, n, 0, n - 1)


def test_kill_9_mid_stream_then_restart_loses_nothing(database: str, mqtt: Broker,
                                                      tmp_path: Path) -> None:
    n = 20_000
    settings = ingest_settings(database, mqtt, ingest_batch_size=2000)
    env = settings_env(settings)
    prepare_session(settings)  # the broker keeps messages for the worker from now on
    site = f"k{uuid.uuid4().hex[:8]}"
    _add_site(database, site)
    proc = _ingest(env, tmp_path / "ingest.log")
    try:
        publisher = threading.Thread(target=publish, args=(mqtt, _stream(site, n)))
        publisher.start()
        assert wait_until(lambda: _count(database) >= 3000, timeout=60, every=0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = _count(database)
        assert killed_at < n, "the stream was over before the kill"
        publisher.join(60)
        proc = _ingest(env, tmp_path / "ingest.log")
        assert wait_until(lambda: _count(database) >= n, timeout=90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        forget_session(settings)
    _exactly_once(database, n)
    # The restarted worker received messages the killed one had taken but not acknowledged.
    assert _count(database, "SELECT sum(messages) FROM ingest_stats") >= n


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test alone: stopping it does not disturb the shared one."""
    path = Path(tempfile.mkdtemp(prefix="caretaker-pgstop-"))
    os.chmod(path, 0o755)
    pg = LocalPostgres(path, free_port())
    pg.start()
    with psycopg.connect(pg.url) as conn:
        migrate(conn)
    try:
        yield pg
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(path, ignore_errors=True)


def test_database_stopped_and_restarted_mid_stream_loses_nothing(
        own_postgres: LocalPostgres, mqtt: Broker) -> None:
    n = 3000
    settings = ingest_settings(own_postgres.url, mqtt, ingest_batch_size=200)
    site = f"p{uuid.uuid4().hex[:8]}"
    _add_site(own_postgres.url, site)
    stream = _stream(site, n)

    def paced() -> None:
        for i in range(0, n, 100):
            publish(mqtt, stream[i:i + 100])
            time.sleep(0.02)

    try:
        with running_worker(settings) as worker:
            publisher = threading.Thread(target=paced)
            publisher.start()
            assert wait_until(lambda: _count(own_postgres.url) >= 300, every=0.02)
            own_postgres.stop(mode="fast")
            time.sleep(3)  # the outage: the worker retries with back-off, acknowledging nothing
            assert len(worker.subscriber.inbox) <= settings.ingest_max_pending
            own_postgres.start()
            publisher.join(60)
            assert wait_until(lambda: _count(own_postgres.url) >= n, timeout=60)
            assert worker.stats.counters["db_errors"] + _count(
                own_postgres.url, "SELECT coalesce(sum(db_errors), 0) FROM ingest_stats") > 0
    finally:
        forget_session(settings)
    _exactly_once(own_postgres.url, n)


def test_two_workers_share_the_stream(database: str, mqtt: Broker,
                                      tmp_path: Path) -> None:
    n = 6000
    settings = ingest_settings(database, mqtt, ingest_batch_size=500, ingest_workers=2)
    for i in range(2):
        prepare_session(settings, i)
    proc = _ingest(settings_env(settings), tmp_path / "ingest.log", "--workers", "2")
    try:
        site = f"w{uuid.uuid4().hex[:8]}"
        _add_site(database, site)
        publish(mqtt, _stream(site, n))
        assert wait_until(lambda: _count(database) >= n, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        forget_session(settings, workers=2)
    _exactly_once(database, n)
    with psycopg.connect(database) as c:
        per_worker = dict(c.execute("SELECT worker, messages FROM ingest_stats").fetchall())
    assert set(per_worker) == {f"{settings.ingest_client_id}-0", f"{settings.ingest_client_id}-1"}
    # both took a share; QoS 1 is at-least-once, so a redelivered message may be counted twice
    # here, but the rows above are exactly once
    assert all(m > 0 for m in per_worker.values()) and sum(per_worker.values()) >= n
