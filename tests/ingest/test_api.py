"""Read-back through the API: telemetry raw and bucketed, latest values, dead letters, /metrics;
scans posted over HTTP, each item judged alone."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from ingest.batch import Message, assemble
from ingest.metrics import WorkerStats
from ingest.store import write_batch

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the api_clock's time
NOW_MS = int(NOW.timestamp() * 1000)


def _ingest(database: str, messages: list[Message]) -> None:
    with psycopg.connect(database, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'S1'), ('s2', 'S2')"
                     " ON CONFLICT DO NOTHING")
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
    r = client.get("/api/v1/telemetry", params={"site": "s1", "metric": "pressure", "limit": 3,
                                                "from": "2026-11-23T07:00:00Z"},
                   headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()  # an hour: raw points, paged by cursor, not counted
    assert body["resolution"] == "raw" and body["total"] is None and body["next_cursor"]
    assert body["limit"] == 3 and len(body["items"]) == 3
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
    # the default last day reads 1-minute buckets: one a reading here
    assert mine["resolution"] == "1m" and len(mine["items"]) == 10
    assert {i["device"] for i in mine["items"]} == {"q1"}
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


def test_telemetry_parameters_are_validated(client: TestClient, database: str,
                                            make_token: Callable[..., dict[str, str]]) -> None:
    _readings(database)
    viewer = make_token("viewer")
    ok = client.get("/api/v1/telemetry", params={"site": "s1", "limit": 1000}, headers=viewer)
    assert ok.status_code == 200 and len(ok.json()["items"]) == 20
    for params in ({"limit": 1001}, {"limit": 0}, {"offset": 2**63}, {"offset": -1},
                   {"metric": "pres\x00sure"}, {"device": "p\x001"}, {"site": "s\x001"},
                   {"bucket": "0s"}, {"bucket": "1e400"}, {"bucket": "x" * 100},
                   {"to": "0001-01-01T00:00:00Z"}, {"from": "2026-11-23T08:00:00"}):
        r = client.get("/api/v1/telemetry", params={"site": "s1", **params}, headers=viewer)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["code"] == "invalid"
    assert client.get("/api/v1/telemetry", params={"site": "s1", "offset": 2**63 - 1},
                      headers=viewer).json()["items"] == []
    for within in ("nan", "0s", "-1h", "\x00"):
        r = client.get("/api/v1/telemetry/latest", params={"site": "s1", "within": within},
                       headers=viewer)
        assert r.status_code == 422, (within, r.text)


def test_dead_letters_listed_without_payloads(client: TestClient, database: str,
                                             make_token: Callable[..., dict[str, str]]) -> None:
    raw = b"\xff\xfebroken {"
    big = b"[" + b"x" * 200_000
    messages = [Message("caretaker/v1/s1/devices/p1/telemetry", raw, NOW_MS),
                Message("caretaker/v1/s2/devices/p1/status", b"maybe", NOW_MS),
                Message("caretaker/v1/s1/devices/p2/telemetry", big, NOW_MS)]
    _ingest(database, messages)
    _ingest(database, messages[:1])  # received again: counted, not listed twice
    engineer = make_token("engineer")
    r = client.get("/api/v1/dead-letters", headers=engineer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3
    assert all(set(i) == {"id", "received_at", "last_received_at", "count", "source", "topic",
                          "item", "reason", "size"} for i in body["items"])
    item = next(i for i in body["items"] if i["topic"] == "caretaker/v1/s1/devices/p1/telemetry")
    assert (item["size"], item["count"], item["source"], item["item"]) == (len(raw), 2, "mqtt",
                                                                           None)
    assert item["reason"].startswith("invalid JSON")
    one = client.get(f"/api/v1/dead-letters/{item['id']}/payload", headers=engineer).json()
    assert base64.b64decode(one["payload_base64"]) == raw and one["truncated"] is False
    assert one["payload_text"] == "\ufffd\ufffdbroken {" and one["size"] == len(raw)
    large = next(i for i in body["items"] if i["size"] == len(big))
    cut = client.get(f"/api/v1/dead-letters/{large['id']}/payload", headers=engineer).json()
    assert (cut["size"], cut["returned"], cut["truncated"]) == (len(big), 65536, True)
    assert base64.b64decode(cut["payload_base64"]) == big[:65536]
    scoped = make_token("supervisor", site="s2")
    listed = client.get("/api/v1/dead-letters", headers=scoped).json()["items"]
    assert [i["topic"] for i in listed] == ["caretaker/v1/s2/devices/p1/status"]
    assert client.get(f"/api/v1/dead-letters/{item['id']}/payload",
                      headers=scoped).status_code == 404  # another site's
    for bad in ("0", str(2**63), "x"):
        assert client.get(f"/api/v1/dead-letters/{bad}/payload",
                          headers=engineer).status_code == 422
    assert client.get("/api/v1/dead-letters/999999/payload", headers=engineer).status_code == 404
    assert client.get("/api/v1/dead-letters", params={"site": "s\x00"},
                      headers=engineer).status_code == 422
    assert client.get("/api/v1/dead-letters", headers=make_token("viewer")).status_code == 403
    assert client.get("/api/v1/dead-letters", headers=make_token("guard")).status_code == 403


def test_posted_scans_are_judged_one_by_one(client: TestClient, database: str,
                                           make_token: Callable[..., dict[str, str]]) -> None:
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'S1')")
        conn.execute("INSERT INTO guards (site_id, id, name) VALUES ('s1', 'g1', 'G')")
    guard = make_token("guard", site="s1", guard="g1")
    batch: list[object] = [{"scan_id": str(uuid.uuid4()), "tag": f"T{i}", "ts": NOW_MS - 1000 * i}
                           for i in range(10)]
    batch[6] = {"scan_id": str(uuid.uuid4()), "tag": "T6", "ts": "yesterday"}
    r = client.post("/api/v1/scans", json=batch, headers=guard)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["received"], body["stored"], body["duplicates"], body["refused"]) == (10, 9, 0, 1)
    assert body["results"][6] == {"index": 6, "scan_id": batch[6]["scan_id"],  # type: ignore[index]
                                  "status": "refused",
                                  "reason": "timestamp is not a number: 'yesterday'"}
    assert len(body["scan_ids"]) == 9
    # the same batch again, one scan with another timestamp: stored once all the same
    batch[0] = {**batch[0], "ts": NOW_MS - 50_000}  # type: ignore[dict-item]
    again = client.post("/api/v1/scans", json=batch, headers=guard).json()
    assert (again["stored"], again["duplicates"], again["refused"]) == (0, 9, 1)
    single = client.post("/api/v1/scans", json={"scan_id": "nope", "tag": "T", "ts": NOW_MS},
                         headers=guard)  # one scan alone: accepted or refused whole
    assert single.status_code == 422 and "scan_id" in single.json()["error"]["message"]
    assert client.post("/api/v1/scans?site=s1&guard=g9", json=batch[1],
                       headers=make_token("supervisor")).status_code == 422
    nobody = client.post("/api/v1/scans?site=s1&guard=g9", json=batch[:2],
                         headers=make_token("supervisor")).json()
    assert nobody["refused"] == 2
    assert nobody["results"][0]["reason"] == "unknown guard 'g9' of site 's1'"
    with psycopg.connect(database, row_factory=dict_row) as conn:
        assert conn.execute("SELECT count(*) AS n FROM scans").fetchone()["n"] == 9
        dead = conn.execute("SELECT source, topic, item, count FROM dead_letters"
                            " ORDER BY topic, item").fetchall()
    assert [(d["source"], d["topic"].split("/")[4], d["item"], d["count"]) for d in dead] == [
        ("http", "g1", 6, 2), ("http", "g9", 0, 1), ("http", "g9", 1, 1)]
    odd = [{"scan_id": str(uuid.uuid4()), "tag": "T\ud800", "ts": NOW_MS},  # lone surrogate
           {"scan_id": str(uuid.uuid4()), "tag": "T", "ts": NOW_MS, "note": "\x00"}]
    r = client.post("/api/v1/scans", content=json.dumps(odd),  # ASCII: "\\ud800" escaped
                    headers={**guard, "Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["refused"] == 2, r.text
    for body_, status in (([], 422), ([batch[1]] * 1001, 422), ("text", 422)):
        assert client.post("/api/v1/scans", json=body_, headers=guard).status_code == status
    assert client.post("/api/v1/scans?site=nowhere&guard=g1", json=batch[:1],
                       headers=make_token("supervisor")).status_code == 404


def test_openapi_documents_the_scan_body_and_telemetry(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    body = spec["paths"]["/api/v1/scans"]["post"]["requestBody"]["content"]["application/json"]
    one, many = body["schema"]["anyOf"]
    assert {"scan_id", "tag", "ts"} <= set(one["required"]) and many["type"] == "array"
    assert many["maxItems"] == 1000 and "offline" in body["examples"]
    telemetry = spec["paths"]["/api/v1/telemetry"]["get"]
    limit = next(p for p in telemetry["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000
    assert spec["components"]["schemas"]["TelemetryPage"]["examples"]


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
