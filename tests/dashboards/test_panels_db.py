"""Every panel, annotation and variable query of every exported dashboard, with Grafana's macros
and the variables expanded, runs against the real database AS THE READ-ONLY ROLE over the
example site's backfilled history, and returns rows of the shape its panel expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from dashboards.macros import Variable, expand, parse_interval
from dashboards.provisioning import Target, export
from dashboards.reader import READER, ensure_reader
from tests.dashboards.backfill import SITE, example_site, records, telemetry

PASSWORD = "reader-test-password"
DEVICE, METRIC = "pump-2", "bearing_temp"
TIMESTAMPTZ = 1184
NUMERIC = {20, 21, 23, 700, 701, 1700}  # int8, int2, int4, float4, float8, numeric


def reader_url(database: str) -> str:
    u = urlsplit(database)
    return urlunsplit(u._replace(netloc=f"{READER}:{PASSWORD}@{u.hostname}:{u.port}"))


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, format, rawSql) of every panel target and annotation of a dashboard."""
    for panel in board.get("panels", []):
        for t in panel.get("targets", []):
            yield f"{board['uid']} / {panel['title']} / {t['refId']}", t["format"], t["rawSql"]
    for a in board.get("annotations", {}).get("list", []):
        if a.get("target", {}).get("rawSql"):
            yield f"{board['uid']} / annotation {a['name']}", "annotation", a["target"]["rawSql"]


@pytest.fixture
def history(database: str, conn: psycopg.Connection[Any]) -> datetime:
    """The example site with three weeks of records and two days of telemetry to now."""
    now = datetime.now(UTC).replace(microsecond=0)
    doc = example_site(conn, now)
    records(conn, doc, now - timedelta(days=21), now, tickets=90)
    telemetry(conn, doc, now - timedelta(days=2), now, timedelta(minutes=5))
    # the device shown has an active alarm and an open ticket, whatever the seed drew
    row = conn.execute("INSERT INTO work_orders (site_id, device_id, source, severity, priority,"
                       " title, opened_at, respond_by, resolve_by, updated_at) VALUES (%s, %s,"
                       " 'alarm', 'major', 2, 'bearing hot', %s, %s, %s, %s) RETURNING id",
                       (SITE, DEVICE, now - timedelta(hours=3), now - timedelta(hours=2),
                        now - timedelta(hours=1), now)).fetchone()
    assert row is not None
    conn.execute("DELETE FROM alarms WHERE device_id = %s AND state <> 'cleared'", (DEVICE,))
    conn.execute("INSERT INTO alarms (site_id, device_id, rule_id, severity, message, metric,"
                 " first_value, raised_at, last_at, work_order_id) VALUES (%s, %s,"
                 " 'pump-bearing-temp', 'major', 'bearing 85 degC', 'bearing_temp', 85, %s, %s,"
                 " %s)", (SITE, DEVICE, now - timedelta(hours=3), now, row["id"]))
    # and one device went offline an hour ago, and is still
    conn.execute("INSERT INTO device_status (time, site_id, device_id, status) VALUES"
                 " (%s, %s, 'elev-b2', 'offline') ON CONFLICT DO NOTHING",
                 (now - timedelta(hours=1), SITE))
    conn.execute("UPDATE devices SET online = false WHERE id = 'elev-b2'")
    conn.commit()
    ensure_reader(conn, PASSWORD)
    conn.commit()
    return now


def variables_of(board: dict[str, Any], reader: psycopg.Connection[Any], start: datetime,
                 end: datetime) -> dict[str, Variable]:
    """Each variable's query run as the reader (it must offer the example's value), then set."""
    chosen = {"site": SITE, "device": DEVICE, "metric": METRIC}
    values: dict[str, Variable] = {}
    for v in board.get("templating", {}).get("list", []):
        sql = expand(v["query"], start=start, end=end, variables=values)
        rows = reader.execute(sql).fetchall()
        offered = [r.get("__value", next(iter(r.values()))) for r in rows]
        assert chosen[v["name"]] in offered, (board["uid"], v["name"], offered)
        multi = bool(v.get("multi") or v.get("includeAll"))
        values[v["name"]] = Variable([chosen[v["name"]]] if multi else chosen[v["name"]], multi)
    return values


def test_every_panel_query_runs_as_the_reader(database: str, history: datetime,
                                              tmp_path: Path) -> None:
    export(tmp_path, Target("127.0.0.1", 5432, "caretaker"))
    boards = [json.loads(p.read_text()) for p in sorted((tmp_path / "dashboards").glob("*.json"))]
    assert len(boards) == 5
    ran = 0
    with psycopg.connect(reader_url(database), row_factory=dict_row, autocommit=True) as reader:
        for board in boards:
            end = history
            start = end - parse_interval(board["time"]["from"].removeprefix("now-"))
            variables = variables_of(board, reader, start, end)
            for where, fmt, raw in queries(board):
                assert "$" not in expand(raw, start=start, end=end, variables=variables), where
                cur = reader.execute(expand(raw, start=start, end=end, variables=variables))
                rows = cur.fetchall()
                columns = {d.name: d.type_code for d in cur.description or []}
                assert rows, f"{where}: no rows for the example site"
                if fmt in ("time_series", "annotation"):
                    assert columns.get("time") == TIMESTAMPTZ, (where, columns)
                if fmt == "time_series":
                    values = {n for n, t in columns.items() if n not in ("time", "metric")}
                    assert values and all(columns[n] in NUMERIC for n in values), (where, columns)
                    assert any(r[n] is not None for r in rows for n in values), where
                    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows), where
                ran += 1
    assert ran >= 40


def test_the_reader_reads_only_and_never_residents(database: str, history: datetime) -> None:
    with psycopg.connect(reader_url(database), autocommit=True) as reader:
        for statement in (
                "INSERT INTO telemetry (time, site_id, device_id, metric, value)"
                " VALUES (now(), 'riverside', 'pump-1', 'flow', 1)",
                "UPDATE work_orders SET state = 'closed'",
                "DELETE FROM alarms",
                "CREATE TABLE mine (x int)",
                "SELECT complainant_phone FROM complaints",
                "SELECT reporter_name FROM work_orders",
                "SELECT * FROM api_tokens"):
            with pytest.raises((psycopg.errors.InsufficientPrivilege,
                                psycopg.errors.ReadOnlySqlTransaction)):
                reader.execute(statement)
        # even with the read-only default switched off, the grants refuse a write
        reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("INSERT INTO sites (id, name) VALUES ('x', 'x')")
        assert reader.execute("SELECT count(*) FROM telemetry").fetchone() != (0,)


def test_reader_role_is_updated_in_place(database: str, conn: psycopg.Connection[Any]) -> None:
    ensure_reader(conn, "first-password")
    conn.commit()
    ensure_reader(conn, PASSWORD)  # again: a new password, the same grants
    conn.commit()
    with psycopg.connect(reader_url(database)) as reader:
        assert reader.execute("SELECT current_user").fetchone() == (READER,)
    with pytest.raises(ValueError):
        ensure_reader(conn, "")
