"""Batch writes against the real database: idempotence, outbox rows, devices, scans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from ingest.batch import Message, assemble
from ingest.payloads import parse_scans
from ingest.store import store_scans, write_batch

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _site(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO sites (id, name) VALUES ('s', 'Site')")
    conn.execute("INSERT INTO checkpoints (site_id, id, name, tag)"
                 " VALUES ('s', 'cp-1', 'Gate', 'T1')")


def test_store_scans_resolves_checkpoints_and_is_idempotent(conn: psycopg.Connection) -> None:
    _site(conn)
    body = [{"scan_id": str(uuid.uuid4()), "tag": "T1", "ts": NOW_MS - 1000},
            {"scan_id": str(uuid.uuid4()), "tag": "UNKNOWN", "ts": NOW_MS - 500,
             "result": "abnormal", "readings": {"p": 0.1}}]
    scans = parse_scans("s", "g-li", body, now=NOW)
    assert store_scans(conn, "s", "g-li", scans, received_at=NOW) == 2
    assert store_scans(conn, "s", "g-li", scans, received_at=NOW) == 0
    rows = conn.execute("SELECT tag, checkpoint_id, result, readings, guard_id, received_at"
                        " FROM scans ORDER BY time").fetchall()
    assert [(r["tag"], r["checkpoint_id"], r["result"]) for r in rows] == [
        ("T1", "cp-1", "ok"), ("UNKNOWN", None, "abnormal")]
    assert rows[1]["readings"] == {"p": 0.1} and rows[0]["received_at"] == NOW
    events = conn.execute("SELECT kind, payload FROM ingest_events").fetchall()
    assert len(events) == 1 and events[0]["kind"] == "scans"
    assert [e["scan_id"] for e in events[0]["payload"]] == [b["scan_id"] for b in body]
    assert events[0]["payload"][0] == {"site": "s", "scan_id": body[0]["scan_id"],
                                       "ts": NOW_MS - 1000}


def test_write_batch_redelivered_writes_nothing_twice(conn: psycopg.Connection) -> None:
    _site(conn)
    conn.execute("INSERT INTO rules (site_id, id, name, kind, metric, enabled, severity) VALUES"
                 " ('s', 'r1', 'High', 'threshold', 'pressure', true, 'major'),"
                 " ('s', 'r2', 'Flow', 'threshold', 'flow', false, 'minor')")
    ts = NOW_MS - 10_000
    msgs = [
        Message("caretaker/v1/s/devices/p1/telemetry",
                f'{{"ts": {ts}, "values": {{"pressure": 0.4, "flow": 3, "mode": "auto"}}}}'
                .encode(),
                NOW_MS),
        Message("caretaker/v1/new-site/devices/x9/telemetry", b'{"on": true}', NOW_MS),
        Message("caretaker/v1/s/devices/p2/status", b"offline", NOW_MS, lwt=True),
        Message("caretaker/v1/s/devices/p2/telemetry", b"[]", NOW_MS),
    ]
    from ingest.store import RuleMetrics

    metrics = RuleMetrics().get(conn)
    assert metrics == ["pressure"]
    first = write_batch(conn, assemble(msgs), rule_metrics=metrics)
    assert (first.telemetry, first.dead_letters) == (4, 1)
    assert sorted(first.registered) == [("new-site", "x9"), ("s", "p1")]
    assert first.events == {"telemetry", "status"}
    again = write_batch(conn, assemble(msgs), rule_metrics=metrics)
    assert (again.telemetry, again.statuses, again.events) == (0, 0, set())
    assert conn.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 4
    tel = conn.execute("SELECT payload FROM ingest_events WHERE kind = 'telemetry'").fetchall()
    assert [r["payload"] for r in tel] == [[{"site": "s", "device": "p1", "metric": "pressure",
                                            "ts": ts, "value": 0.4, "text": None}]]
    status = conn.execute("SELECT payload FROM ingest_events WHERE kind = 'status'").fetchone()
    assert {(e["device"], e["status"], e["source"]) for e in status["payload"]} == {
        ("p1", "online", "telemetry"), ("x9", "online", "telemetry"), ("p2", "offline", "lwt")}
    dev = {r["id"]: r for r in conn.execute("SELECT * FROM devices").fetchall()}
    assert dev["x9"]["status"] == "unassigned" and dev["x9"]["online"] is True
    assert dev["p2"]["online"] is False and dev["p1"]["last_seen"] == NOW
    site = conn.execute("SELECT auto_registered FROM sites WHERE id = 'new-site'").fetchone()
    assert site["auto_registered"] is True
    dead = conn.execute("SELECT topic, payload, reason FROM dead_letters").fetchall()
    assert len(dead) == 2 and dead[0]["payload"] == b"[]" and dead[0]["reason"] == "empty array"


def test_text_values_and_odd_metric_names_survive_copy(conn: psycopg.Connection) -> None:
    payload = (b'{"values": {"back\\\\slash": "tab\\there\\\\ and\\nnewline\\r",'
               b' "x": 1e-300, "big": 12345678901234567890,'
               b' "\xe6\xb8\xa9\xe5\xba\xa6": "\xe6\xad\xa3\xe5\xb8\xb8"}}')
    written = write_batch(conn, assemble([Message("caretaker/v1/s/devices/d/telemetry", payload,
                                                  NOW_MS)]))
    assert written.telemetry == 4 and written.dead_letters == 0
    rows = {r["metric"]: (r["value"], r["text_value"]) for r in conn.execute(
        "SELECT metric, value, text_value FROM telemetry").fetchall()}
    assert rows == {"back\\slash": (None, "tab\there\\ and\nnewline\r"), "x": (1e-300, None),
                    "big": (12345678901234567890.0, None), "温度": (None, "正常")}
