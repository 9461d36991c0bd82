"""The ingest's memory is bounded in bytes: 1 MB messages while the database is down."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil
import pytest

from caretaker.servers import LocalPostgres
from tests.fix_servers import Broker
from tests.ingest.helpers import (
    ingest_settings,
    prepare_session,
    publish,
    settings_env,
    wait_until,
)
from tests.ingest.test_resilience import _count, _ingest, own_postgres  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


def test_one_megabyte_messages_with_the_database_down_keep_memory_bounded(
        own_postgres: LocalPostgres, mqtt: Broker, tmp_path: object) -> None:  # noqa: F811
    n, size, limit = 300, 1_000_000, 32 * MIB
    settings = ingest_settings(own_postgres.url, mqtt, ingest_max_pending_bytes=limit,
                               ingest_batch_size=50)
    env = {**settings_env(settings), "CARETAKER_INGEST_MAX_PENDING_BYTES": str(limit)}
    prepare_session(settings)
    proc = _ingest(env, mqtt.state_dir / "ingest.log")
    try:
        stats = "SELECT coalesce(sum(messages), -1) FROM ingest_stats"
        assert wait_until(lambda: _count(own_postgres.url, stats) >= 0, timeout=30)
        process = psutil.Process(proc.pid)
        baseline = process.memory_info().rss
        own_postgres.stop(mode="fast")
        pad = b"x" * (size - 60)
        now = int(time.time() * 1000)
        stream = [(f"caretaker/v1/mem/devices/d{i % 10}/telemetry",
                   b'{"ts": %d, "values": {"note": "%s"}}' % (now - i, pad)) for i in range(n)]
        publisher = threading.Thread(target=publish, args=(mqtt, stream))
        publisher.start()
        peak, hard, settle = baseline, time.monotonic() + 90, None
        while time.monotonic() < hard:  # sample RSS while publishing, and 3 s after
            peak = max(peak, process.memory_info().rss)
            if not publisher.is_alive():
                settle = settle or time.monotonic() + 3
                if time.monotonic() > settle:
                    break
            time.sleep(0.05)
        publisher.join(5)
        assert not publisher.is_alive()
        assert proc.poll() is None
        # 300 MB published; the ingest held at most its limit (plus parsing copies)
        assert peak - baseline < 5 * limit, f"RSS grew by {(peak - baseline) / MIB:.0f} MiB"
        own_postgres.start()
        assert wait_until(lambda: _count(own_postgres.url, stats) >= n, timeout=120)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
