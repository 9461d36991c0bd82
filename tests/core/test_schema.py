"""The database schema: TimescaleDB loaded, hypertables, migrations safe to re-run."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from caretaker.migrations import available, migrate
from caretaker.retention import apply_retention, compact_telemetry, compaction_job


def test_timescaledb_loaded_and_telemetry_is_a_hypertable(conn: psycopg.Connection) -> None:
    ext = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert ext is not None
    tables = {r["hypertable_name"] for r in conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables")}
    assert {"telemetry_points", "device_status", "scans"} <= tables


def test_migrations_rerun_cleanly(conn: psycopg.Connection) -> None:
    assert migrate(conn) == []
    assert migrate(conn) == []
    recorded = [r["version"] for r in conn.execute(
        "SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [m.version for m in available()]


def test_changed_migration_is_refused(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    conn.commit()
    try:
        migrate(conn)
    except RuntimeError as exc:
        assert "was changed" in str(exc)
    else:
        raise AssertionError("a changed migration was accepted")


def test_telemetry_natural_key_refuses_duplicates(conn: psycopg.Connection) -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    sql = ("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
           " VALUES (%s, 's', 'd', 'm', 1)")
    assert conn.execute(sql, (t,)).rowcount == 1
    assert conn.execute(sql, (t,)).rowcount == 0  # the view's trigger skips a known point
    assert conn.execute("SELECT count(*) AS n FROM series").fetchone()["n"] == 1


def test_the_telemetry_view_keeps_latest_readings_and_the_rollup_queue(
        conn: psycopg.Connection) -> None:
    t = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    sql = ("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
           " VALUES (%s, 's', 'd', 'm', %s)")
    for at, value in ((t, 1), (t + timedelta(hours=1), 2), (t - timedelta(hours=3), 3)):
        conn.execute(sql, (at, value))
    latest = conn.execute("SELECT time, value FROM latest_readings").fetchall()
    assert [(r["time"], r["value"]) for r in latest] == [(t + timedelta(hours=1), 2)]
    buckets = [r["bucket"] for r in conn.execute(
        "SELECT bucket FROM rollup_pending ORDER BY bucket")]
    assert buckets == [datetime(2026, 11, 1, h, tzinfo=UTC) for h in (7, 10, 11)]
    rows = conn.execute("SELECT site_id, device_id, metric, value FROM telemetry"
                        " WHERE site_id = 's' ORDER BY time").fetchall()
    assert [r["value"] for r in rows] == [3, 1, 2]


def test_filters_on_the_view_reach_the_series_and_points_indexes(
        conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                 " SELECT now() - k * interval '1 minute', 's', 'd' || (k % 1000), 'm', k"
                 " FROM generate_series(1, 3000) AS k")
    conn.execute("ANALYZE series")
    conn.execute("ANALYZE telemetry_points")
    plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
        "EXPLAIN SELECT time, value FROM telemetry WHERE site_id = 's' AND device_id = 'd7'"
        " AND metric = 'm' AND time > now() - interval '1 hour'"))
    assert "series_site_id_device_id_metric_key" in plan, plan
    assert "telemetry_points_key" in plan and "(series_id = s.id)" in plan, plan


def test_retention_drops_old_chunks_only(conn: psycopg.Connection) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    for age in (400, 10):
        conn.execute("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                     " VALUES (%s, 's', 'd', 'm', 1)", (now - timedelta(days=age),))
    dropped = apply_retention(conn, days=365, now=now)
    assert dropped >= 1
    left = conn.execute("SELECT count(*) AS n FROM telemetry_points").fetchone()
    assert left["n"] == 1


def test_compaction_rebuilds_closed_chunks_once_and_drops_invalid_leftovers(
        database: str) -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with psycopg.connect(database, row_factory=dict_row) as c:
        c.execute("INSERT INTO telemetry_points (series_id, time, value)"
                  " SELECT s, %s + k * interval '10 s', k FROM generate_series(0, 8639, 12) k,"
                  " generate_series(1, 200) s ORDER BY k, s", (start,))  # a day, as ingested
        c.execute("INSERT INTO telemetry_points (series_id, time, value)"
                  " VALUES (1, %s, 1)", (start + timedelta(days=1, hours=1),))
        c.commit()
        before = c.execute("SELECT hypertable_size('telemetry_points') AS b").fetchone()["b"]
        [chunk] = [r["chunk"] for r in c.execute(
            "SELECT format('%%I.%%I', chunk_schema, chunk_name) AS chunk"
            " FROM timescaledb_information.chunks WHERE hypertable_name = 'telemetry_points'"
            " AND range_end <= %s", (start + timedelta(days=1),))]
    with psycopg.connect(database, row_factory=dict_row, autocommit=True) as c:
        with pytest.raises(psycopg.errors.UniqueViolation):  # leaves an invalid index behind
            c.execute(f"CREATE UNIQUE INDEX CONCURRENTLY leftover_ccnew ON {chunk} (series_id)")
        now = start + timedelta(days=1, hours=1)  # the first day closed an hour ago: settling
        assert compact_telemetry(c, now=now) == []
        thread = compaction_job(lambda: database)(c, now + timedelta(hours=1))
        assert thread is not None
        thread.join(60)
        assert [r["chunk"] for r in c.execute("SELECT chunk FROM compacted_chunks")] == [chunk]
        assert compact_telemetry(c, now=now + timedelta(hours=2)) == []  # done once
        [later] = compact_telemetry(c, now=now + timedelta(days=3))  # the second day's, closed
        assert later != chunk
        after = c.execute("SELECT hypertable_size('telemetry_points') AS b").fetchone()["b"]
        assert after < before * 0.9, (before, after)
        assert c.execute("SELECT count(*) AS n FROM pg_indexes"
                         " WHERE indexname = 'leftover_ccnew'").fetchone()["n"] == 0
        assert c.execute("SELECT count(*) AS n, sum(value) AS v FROM telemetry_points"
                         " WHERE series_id = 7").fetchone() == {"n": 720, "v": 720 * 8628 / 2}
        plan = "\n".join(r["QUERY PLAN"] for r in c.execute(
            "EXPLAIN SELECT * FROM telemetry_points WHERE series_id = 7"
            " AND time >= %s AND time < %s", (start, start + timedelta(hours=1))))
        assert "telemetry_points_key" in plan, plan
