"""The rollup job against the real database, on a controllable clock: a backfill rolled up
exactly, the open hour left until it has settled, late points recomputing their hour, a crash
mid-way, two workers at once, and retention."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from ingest.batch import Message, assemble
from ingest.store import write_batch
from rules.rollups import apply_retention, catch_up, roll_batch
from tests.rollups.helpers import Point, close, expected, ingest, steady, utc

NOW = utc(2026, 11, 23, 8, 0)
H = timedelta(hours=1)
DEVICES, METRICS = ("p1", "p2", "p3"), ("pressure", "temp")


def stored(conn: psycopg.Connection[Any], table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = conn.cursor(row_factory=dict_row).execute(sql.SQL(
        "SELECT s.device_id, s.metric, r.bucket, r.min, r.max, r.sum / nullif(r.nvalues, 0)"
        " AS avg, r.count, r.last, r.last_text FROM {} r JOIN series s ON s.id = r.series_id"
    ).format(sql.Identifier(table))).fetchall()
    return {(r.pop("device_id"), r.pop("metric"), r.pop("bucket")): r for r in rows}


def read(conn: psycopg.Connection[Any], start: Any, end: Any, width: timedelta,
         tier: str | None = None) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT device_id, metric, time, min, max, avg, count, last, last_text"
        " FROM telemetry_rollup('s1', NULL, NULL, %s, %s, %s, %s)",
        (start, end, width, tier)).fetchall()
    return {(r.pop("device_id"), r.pop("metric"), r.pop("time")): r for r in rows}


def pending(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) AS n FROM rollup_pending").fetchone()
    return int(row["n"]) if row else 0


def test_backfill_is_rolled_up_exactly(conn: psycopg.Connection[Any]) -> None:
    points = steady(DEVICES, METRICS, NOW - 5 * H, NOW - 30 * timedelta(minutes=1),
                    timedelta(seconds=10))
    points.append(Point("p1", "mode", NOW - 4 * H, "auto"))  # a text metric
    points.append(Point("p1", "mode", NOW - 4 * H + timedelta(seconds=5), "manual"))
    ingest(conn, points, received=NOW)
    assert pending(conn) == 6 * 5 + 1
    clock = FakeClock(NOW)
    assert catch_up(conn, now=clock(), batch=7) == 6 * 4 + 1  # the last hour is still open
    assert stored(conn, "telemetry_1h").keys() == {
        k for k in expected(points, H) if k[2] < NOW - H}
    clock.advance(minutes=1)
    assert catch_up(conn, now=clock()) == 6
    assert pending(conn) == 0
    assert close(stored(conn, "telemetry_1m"), expected(points, timedelta(minutes=1)))
    assert close(stored(conn, "telemetry_1h"), expected(points, H))
    text = stored(conn, "telemetry_1h")[("p1", "mode", NOW - 4 * H)]
    assert (text["count"], text["last_text"], text["avg"]) == (2, "manual", None)
    # reads at any width and any (unaligned) range equal the raw points' aggregates
    for width, start, end in ((timedelta(minutes=5), NOW - 5 * H, NOW),
                              (timedelta(minutes=7), NOW - 4 * H - timedelta(seconds=13), NOW),
                              (H, NOW - 4 * H - timedelta(minutes=25), NOW - H / 3),
                              (timedelta(days=1), NOW - 5 * H, NOW),
                              (timedelta(seconds=90), NOW - 2 * H, NOW - H)):
        want = expected(points, width, start, end)
        assert close(read(conn, start, end, width), want), (width, start, end)
        assert close(read(conn, start, end, width, "raw"), want), (width, "raw")


def test_the_open_hour_is_read_raw_until_it_is_rolled(conn: psycopg.Connection[Any]) -> None:
    points = steady(DEVICES, METRICS, NOW - 2 * H, NOW + 20 * timedelta(minutes=1),
                    timedelta(seconds=30))
    ingest(conn, points, received=NOW + 20 * timedelta(minutes=1))
    clock = FakeClock(NOW + 20 * timedelta(minutes=1))
    catch_up(conn, now=clock())
    assert not any(k[2] >= NOW for k in stored(conn, "telemetry_1m"))
    for width in (timedelta(minutes=1), H):
        assert close(read(conn, NOW - 2 * H, clock(), width),
                     expected(points, width, NOW - 2 * H, clock()))
    clock.set(NOW + H + timedelta(seconds=59))
    assert catch_up(conn, now=clock()) == 0  # ended, not yet settled
    clock.advance(seconds=1)
    assert catch_up(conn, now=clock()) == len(DEVICES) * len(METRICS)
    assert close(stored(conn, "telemetry_1h"), expected(points, H))


def test_late_points_make_their_hour_pending_and_recomputed(
        conn: psycopg.Connection[Any]) -> None:
    points = steady(DEVICES, METRICS, NOW - 3 * H, NOW, timedelta(minutes=1))
    ingest(conn, points, received=NOW)
    catch_up(conn, now=NOW + 2 * timedelta(minutes=1))
    assert pending(conn) == 0
    late = [Point("p2", "temp", NOW - 3 * H + timedelta(minutes=17, seconds=30), 999.0),
            Point("p9", "temp", NOW - 2 * H + timedelta(seconds=1), -5.0)]  # a new series too
    ingest(conn, late, received=NOW + H)
    assert pending(conn) == 2
    everything = points + late
    # before the job runs again the reads are already exact: the pending hours are read raw
    for width in (timedelta(minutes=1), timedelta(minutes=15), H):
        assert close(read(conn, NOW - 3 * H, NOW, width), expected(everything, width))
    assert stored(conn, "telemetry_1h")[("p2", "temp", NOW - 3 * H)]["max"] != 999.0
    assert catch_up(conn, now=NOW + H) == 2
    assert close(stored(conn, "telemetry_1m"), expected(everything, timedelta(minutes=1)))
    assert close(stored(conn, "telemetry_1h"), expected(everything, H))
    # a point sent again (redelivery) writes nothing, so nothing is pending
    ingest(conn, late, received=NOW + H)
    assert pending(conn) == 0


def test_a_crash_mid_way_loses_and_doubles_nothing(database: str) -> None:
    points = steady(DEVICES, METRICS, NOW - 4 * H, NOW, timedelta(seconds=20))
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
    crashed = psycopg.connect(database, row_factory=dict_row)
    assert roll_batch(crashed, now=NOW + H, batch=5) == 5
    crashed.commit()  # the first batch committed
    assert roll_batch(crashed, now=NOW + H, batch=5) == 5
    crashed.close()  # the second never committed: the process died
    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert pending(conn) == 24 - 5
        assert len(stored(conn, "telemetry_1h")) == 5
        assert catch_up(conn, now=NOW + H) == 24 - 5
        assert pending(conn) == 0
        assert close(stored(conn, "telemetry_1m"), expected(points, timedelta(minutes=1)))
        assert close(stored(conn, "telemetry_1h"), expected(points, H))


def test_two_workers_take_disjoint_hours(database: str) -> None:
    devices = [f"d{i}" for i in range(20)]
    points = steady(devices, METRICS, NOW - 12 * H, NOW, timedelta(minutes=2))
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
    total = len(devices) * len(METRICS) * 12
    later = NOW + H  # every hour settled

    def again() -> None:
        """Every hour pending again, nothing rolled (the chunks stay: TimescaleDB creates a
        chunk under a lock on its hypertable held to the commit, so a worker creating one
        would wait for the other's commit)."""
        with psycopg.connect(database, row_factory=dict_row) as conn:
            conn.execute("DELETE FROM telemetry_1m")
            conn.execute("DELETE FROM telemetry_1h")
            conn.execute("INSERT INTO rollup_pending SELECT DISTINCT series_id,"
                         " time_bucket('1 hour', time) FROM telemetry_points")

    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert catch_up(conn, now=later) == total
    again()
    # one worker holds its claim open: the other takes only the rest
    a = psycopg.connect(database, row_factory=dict_row)
    b = psycopg.connect(database, row_factory=dict_row)
    try:
        assert roll_batch(a, now=later, batch=100) == 100
        assert roll_batch(b, now=later, batch=total) == total - 100
        b.commit()
        assert roll_batch(b, now=later, batch=total) == 0
        a.commit()
    finally:
        a.close()
        b.close()
    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert pending(conn) == 0
        assert close(stored(conn, "telemetry_1h"), expected(points, H))
    # and two running flat out from a fresh backlog: every hour rolled once
    again()
    counts: list[int] = []

    def worker() -> None:
        with psycopg.connect(database, row_factory=dict_row) as conn:
            counts.append(catch_up(conn, now=later, batch=13))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(counts) == total and len(counts) == 2
    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert pending(conn) == 0
        assert close(stored(conn, "telemetry_1h"), expected(points, H))
        assert close(stored(conn, "telemetry_1m"), expected(points, timedelta(minutes=1)))


def test_hours_older_than_the_raw_points_kept_are_not_recomputed(
        conn: psycopg.Connection[Any]) -> None:
    old = steady(["p1"], ["temp"], NOW - 100 * 24 * H, NOW - 100 * 24 * H + H,
                 timedelta(minutes=5))
    ingest(conn, old, received=NOW)
    catch_up(conn, now=NOW)
    before = stored(conn, "telemetry_1h")
    assert close(before, expected(old, H))
    ingest(conn, [Point("p1", "temp", NOW - 100 * 24 * H + timedelta(seconds=1), 1e6)],
           received=NOW)
    assert catch_up(conn, now=NOW, raw_since=NOW - 90 * 24 * H) == 1
    assert stored(conn, "telemetry_1h") == before and pending(conn) == 0


def test_retention_drops_each_tier_at_its_age(conn: psycopg.Connection[Any]) -> None:
    points = (steady(["p1"], ["temp"], NOW - 500 * 24 * H, NOW - 500 * 24 * H + H, H / 4)
              + steady(["p1"], ["temp"], NOW - 120 * 24 * H, NOW - 120 * 24 * H + H, H / 4)
              + steady(["p1"], ["temp"], NOW - 2 * H, NOW - H, H / 4))
    ingest(conn, points, received=NOW)
    catch_up(conn, now=NOW)
    assert len(stored(conn, "telemetry_1h")) == 3
    apply_retention(conn, now=NOW, raw_days=90, minute_days=400, hour_days=3650)
    conn.commit()
    raw = conn.execute("SELECT count(*) AS n FROM telemetry_points").fetchone()
    assert raw is not None and raw["n"] == 4  # the last hour's only
    assert {k[2] for k in stored(conn, "telemetry_1m")} == {
        k[2] for k in expected(points, timedelta(minutes=1)) if k[2] > NOW - 400 * 24 * H}
    assert len(stored(conn, "telemetry_1h")) == 3
    # a month at hourly resolution still answers from the hours kept
    got = read(conn, NOW - 121 * 24 * H, NOW, timedelta(days=1))
    assert sum(r["count"] for r in got.values()) == 8


def _late_write(database: str, at: Any) -> psycopg.Connection[Any]:
    """An ingest transaction that wrote one late point and has not committed yet."""
    w = psycopg.connect(database, row_factory=dict_row)
    write_batch(w, assemble([Message("caretaker/v1/s1/devices/p1/telemetry",
                                     json.dumps({"ts": int(at.timestamp() * 1000),
                                                 "values": {"temp": 500.0}}).encode(),
                                     int(NOW.timestamp() * 1000))]))
    return w


def test_a_late_point_racing_the_job_is_not_lost(database: str) -> None:
    points = steady(["p1"], ["temp"], NOW - 3 * H, NOW - 2 * H, timedelta(minutes=1))
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
    late = Point("p1", "temp", NOW - 3 * H + timedelta(seconds=30), 500.0)
    # the ingest's transaction first: its hour stays pending while it is open
    w = _late_write(database, late.time)
    with psycopg.connect(database, row_factory=dict_row) as j:
        assert roll_batch(j, now=NOW) == 0
    w.commit()
    w.close()
    # the job's first: the ingest waits for it, then queues the hour again
    later = Point("p1", "temp", NOW - 3 * H + timedelta(seconds=45), 500.0)
    with psycopg.connect(database, row_factory=dict_row) as j:
        assert roll_batch(j, now=NOW) == 1
        done: list[psycopg.Connection[Any]] = []
        writer = threading.Thread(target=lambda: done.append(_late_write(database, later.time)))
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # waiting for the job's claim (it would not, unlocked)
        j.commit()
    writer.join(timeout=30)
    done[0].commit()
    done[0].close()
    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert pending(conn) == 1
        catch_up(conn, now=NOW)
        want = expected([*points, late, later], H)
        assert close(stored(conn, "telemetry_1h"), want)
        assert stored(conn, "telemetry_1h")[("p1", "temp", NOW - 3 * H)]["count"] == 62
