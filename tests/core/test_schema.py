"""The database schema: TimescaleDB loaded, hypertables, migrations safe to re-run."""

from datetime import UTC, datetime, timedelta

import psycopg

from caretaker.migrations import available, migrate
from caretaker.retention import apply_retention


def test_timescaledb_loaded_and_telemetry_is_a_hypertable(conn: psycopg.Connection) -> None:
    ext = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert ext is not None
    tables = {r["hypertable_name"] for r in conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables")}
    assert {"telemetry", "device_status", "scans"} <= tables


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
           " VALUES (%s, 's', 'd', 'm', 1) ON CONFLICT DO NOTHING")
    assert conn.execute(sql, (t,)).rowcount == 1
    assert conn.execute(sql, (t,)).rowcount == 0


def test_retention_drops_old_chunks_only(conn: psycopg.Connection) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    for age in (400, 10):
        conn.execute("INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                     " VALUES (%s, 's', 'd', 'm', 1)", (now - timedelta(days=age),))
    dropped = apply_retention(conn, days=365, now=now)
    assert dropped >= 1
    left = conn.execute("SELECT count(*) AS n FROM telemetry").fetchone()
    assert left["n"] == 1
