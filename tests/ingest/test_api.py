"""Read-back through the API: telemetry raw and bucketed, latest values, dead letters, /metrics."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from fastapi.testclient import TestClient

from ingest.batch import Message, assemble
from ingest.metrics import WorkerStats
from ingest.store import write_batch

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the api_clock's time
NOW_MS = int(NOW.timestamp() * 1000)


def _ingest(database: str, messages: list[Message]) -> None:
    with psycopg.connect(database) as conn:
        write_batch(conn, assemble(messages))


def _readings(database: str) -> None:
    msgs = []
    for minute in range(10):  # 07:50 .. 07:59, one reading a minute
        ts = NOW_MS - (10 - minute) * 60_000
        msgs.append(Message("caretaker/v1/s1/devices/p1/telemetry",
                            f'{{"ts": {ts}, "values": {{"pressure": {minute},'
                            f' "mode": "m{minute}"}}}}'.encode(), NOW_MS))
        msgs.append(Message("caretaker/v1/s2/devices/q1/telemetry",
                            f'{{"ts": {ts}, "values": {{"pressure": 100}}}}'.encode(), NOW_MS))
    _ingest(database, msgs)


def test_telemetry_raw_and_bucketed(client: TestClient, database: str,
                                    make_token: Callable[..., dict[str, str]]) -> None:
    _readings(database)
    viewer = make_token("viewer")
    r = client.get("/api/v1/telemetry", params={"site": "s1", "metric": "pressure", "limit": 3},
                   headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 10 and body["limit"] == 3 and len(body["items"]) == 3
    assert body["items"][0] == {"time": "2026-11-23T07:50:00Z", "device": "p1",
                                "metric": "pressure", "value": 0.0, "text": None}
    r = client.get("/api/v1/telemetry", headers=viewer, params={
        "site": "s1", "device": "p1", "metric": "pressure", "bucket": "5m",
        "from": "2026-11-23T07:50:00Z", "to": "2026-11-23T08:00:00Z"})
    items = r.json()["items"]
    assert [(i["time"], i["min"], i["max"], i["avg"], i["count"], i["last"]) for i in items] == [
        ("2026-11-23T07:50:00Z", 0.0, 4.0, 2.0, 5, 4.0),
        ("2026-11-23T07:55:00Z", 5.0, 9.0, 7.0, 5, 9.0)]
    r = client.get("/api/v1/telemetry", headers=viewer,
                   params={"site": "s1", "metric": "mode", "bucket": "1h"})
    assert r.json()["items"][0]["last_text"] == "m9" and r.json()["items"][0]["count"] == 10
    # a token of site s2 cannot read s1; one of s1 reads s1 without ?site=
    assert client.get("/api/v1/telemetry", params={"site": "s1"},
                      headers=make_token("viewer", site="s2")).status_code == 403
    mine = client.get("/api/v1/telemetry", headers=make_token("engineer", site="s2")).json()
    assert mine["total"] == 10 and {i["device"] for i in mine["items"]} == {"q1"}
    assert client.get("/api/v1/telemetry", params={"site": "s1", "bucket": "5 minutes"},
                      headers=viewer).status_code == 422
    assert client.get("/api/v1/telemetry", headers=viewer).status_code == 422
    assert client.get("/api/v1/telemetry", params={"site": "s1"}).status_code == 401


def test_latest_values(client: TestClient, database: str,
                       make_token: Callable[..., dict[str, str]]) -> None:
    _readings(database)
    r = client.get("/api/v1/telemetry/latest", params={"site": "s1"},
                   headers=make_token("viewer"))
    assert r.status_code == 200, r.text
    assert [(i["device"], i["metric"], i["value"], i["text"], i["time"])
            for i in r.json()["items"]] == [
        ("p1", "mode", None, "m9", "2026-11-23T07:59:00Z"),
        ("p1", "pressure", 9.0, None, "2026-11-23T07:59:00Z")]


def test_dead_letters_shown_safely_to_operators(client: TestClient, database: str,
                                                make_token: Callable[..., dict[str, str]]) -> None:
    raw = b"\xff\xfebroken {"
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('s2', 'S2')")
    _ingest(database, [Message("caretaker/v1/s1/devices/p1/telemetry", raw, NOW_MS),
                       Message("caretaker/v1/s2/devices/p1/status", b"maybe", NOW_MS)])
    r = client.get("/api/v1/dead-letters", headers=make_token("engineer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2
    item = next(i for i in body["items"] if i["topic"].startswith("caretaker/v1/s1/"))
    assert base64.b64decode(item["payload_base64"]) == raw
    assert item["payload_text"] == "\ufffd\ufffdbroken {" and item["size"] == len(raw)
    assert item["reason"].startswith("invalid JSON")
    scoped = client.get("/api/v1/dead-letters", headers=make_token("supervisor", site="s2"))
    assert [i["topic"] for i in scoped.json()["items"]] == ["caretaker/v1/s2/devices/p1/status"]
    assert client.get("/api/v1/dead-letters", headers=make_token("viewer")).status_code == 403
    assert client.get("/api/v1/dead-letters", headers=make_token("guard")).status_code == 403


def test_metrics_expose_ingest_counters(client: TestClient, database: str,
                                        make_token: Callable[..., dict[str, str]]) -> None:
    stats = WorkerStats("caretaker-ingest-0")
    stats.batch_seconds.observe(0.004)
    stats.lag_seconds.observe_many([0.02, 0.2])
    with psycopg.connect(database) as conn:
        stats.write(conn, backlog=7, messages=120, rows_written=360, dead_letters=2, batches=3)
        stats.reset()
        stats.write(conn, backlog=0, messages=30, rows_written=90, batches=1)
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers=make_token("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    w = 'worker="caretaker-ingest-0"'
    for line in (f"caretaker_ingest_messages_total{{{w}}} 150.0",
                 f"caretaker_ingest_rows_written_total{{{w}}} 450.0",
                 f"caretaker_ingest_dead_letters_total{{{w}}} 2.0",
                 f"caretaker_ingest_batches_total{{{w}}} 4.0",
                 f"caretaker_ingest_backlog{{{w}}} 0.0",
                 f'caretaker_ingest_batch_seconds_bucket{{le="0.005",{w}}} 1.0',
                 f'caretaker_ingest_batch_seconds_count{{{w}}} 1.0',
                 f'caretaker_ingest_commit_lag_seconds_bucket{{le="0.02",{w}}} 1.0',
                 f'caretaker_ingest_commit_lag_seconds_bucket{{le="+Inf",{w}}} 2.0'):
        assert line in text, line
