"""Through the real broker into the real database: shapes, redelivery, dead letters."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg.rows import dict_row

from tests.fix_servers import Broker
from tests.ingest.helpers import (
    Publisher,
    forget_session,
    ingest_settings,
    publish,
    running_worker,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _count(database: str, sql: str, params: Any = ()) -> int:
    with psycopg.connect(database) as c:
        return int(c.execute(sql, params).fetchone()[0])  # type: ignore[index]


def test_every_shape_end_to_end(database: str, mqtt: Broker) -> None:
    settings = ingest_settings(database, mqtt)
    site = f"s{uuid.uuid4().hex[:8]}"
    base = f"caretaker/v1/{site}"
    now = int(time.time() * 1000)
    scan_ids = [str(uuid.uuid4()) for _ in range(3)]
    with psycopg.connect(database) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'S')", (site,))
        c.execute("INSERT INTO checkpoints (site_id, id, name, tag) VALUES (%s, 'cp-1', 'G', 'T1')",
                  (site,))
        c.execute("INSERT INTO guards (site_id, id, name) VALUES (%s, 'g-li', 'Li')", (site,))
    try:
        with running_worker(settings):
            pub = Publisher(mqtt, v5=True)
            pub.publish(f"{base}/devices/p1/telemetry", b'{"pressure": 0.42, "run": true}')
            pub.publish(f"{base}/devices/p1/telemetry",
                        f'{{"ts": {now - 5000}, "values": {{"flow": 3.5, "mode": "auto"}}}}')
            pub.publish(f"{base}/devices/p2/telemetry",
                        f'[{{"ts": {now - 2000}, "values": {{"t": 1}}}},'
                        f' {{"ts": {now - 1000}, "values": {{"t": 2}}}}]')
            pub.publish(f"{base}/devices/p5/status", b"online", retain=True)
            lwt = Properties(PacketTypes.PUBLISH)
            lwt.UserProperty = ("source", "lwt")
            pub.publish(f"{base}/devices/p3/status", b"offline", properties=lwt)
            pub.publish(f"{base}/devices/p4/status", b'{"status": "offline", "reason": "lwt"}')
            pub.publish(f"{base}/guards/g-li/scans",
                        f'{{"scan_id": "{scan_ids[0]}", "tag": "T1", "ts": {now - 3000}}}')
            pub.publish(f"{base}/guards/g-li/scans",
                        f'[{{"scan_id": "{scan_ids[1]}", "tag": "T1", "ts": {now - 9000}}},'
                        f' {{"scan_id": "{scan_ids[2]}", "tag": "NOPE", "ts": {now - 8000},'
                        f' "result": "abnormal", "readings": {{"p": 0.1}}, "note": "leak"}}]')
            pub.close()
            assert wait_until(lambda: _count(database, "SELECT count(*) FROM scans") == 3
                              and _count(database, "SELECT count(*) FROM telemetry") == 6
                              and _count(database, "SELECT count(*) FROM devices"
                                                   " WHERE online IS NOT NULL") == 5)
    finally:
        forget_session(settings)
    with psycopg.connect(database, row_factory=dict_row) as c:
        tel = c.execute("SELECT device_id, metric, value, text_value, time FROM telemetry"
                        " ORDER BY device_id, metric, time").fetchall()
        assert [(r["device_id"], r["metric"], r["value"], r["text_value"]) for r in tel] == [
            ("p1", "flow", 3.5, None), ("p1", "mode", None, "auto"),
            ("p1", "pressure", 0.42, None), ("p1", "run", 1.0, None),
            ("p2", "t", 1.0, None), ("p2", "t", 2.0, None)]
        assert int(tel[0]["time"].timestamp() * 1000) == now - 5000
        devices = {r["id"]: r for r in c.execute("SELECT * FROM devices").fetchall()}
        assert {d: (r["status"], r["online"]) for d, r in devices.items()} == {
            "p1": ("unassigned", True), "p2": ("unassigned", True),
            "p3": ("unassigned", False), "p4": ("unassigned", False),
            "p5": ("unassigned", True)}
        status = c.execute("SELECT device_id, status, source FROM device_status"
                           " ORDER BY device_id").fetchall()
        assert [(r["device_id"], r["status"], r["source"]) for r in status] == [
            ("p1", "online", "telemetry"), ("p2", "online", "telemetry"),
            ("p3", "offline", "lwt"), ("p4", "offline", "lwt"), ("p5", "online", "status")]
        scans = c.execute("SELECT scan_id::text, checkpoint_id, result, note FROM scans"
                          " ORDER BY time").fetchall()
        assert [(r["scan_id"], r["checkpoint_id"]) for r in scans] == [
            (scan_ids[1], "cp-1"), (scan_ids[2], None), (scan_ids[0], "cp-1")]
        kinds = [r["kind"] for r in c.execute("SELECT kind FROM ingest_events").fetchall()]
        assert "scans" in kinds and "status" in kinds
        assert c.execute("SELECT count(*) AS n FROM dead_letters").fetchone()["n"] == 0


BAD = [
    ("devices/d1/telemetry", b"{not json"),
    ("devices/d1/telemetry", b'["wrong shape"]'),
    ("devices/d1/telemetry", b'{"ts": "noon", "values": {"a": 1}}'),
    ("devices/d1/telemetry", b'{"ts": 4102444800000, "values": {"a": 1}}'),
    ("devices/d1/telemetry", b'{"ts": 900000000000, "values": {"a": 1}}'),
    ("devices/d1/telemetry", b'{"a": [1, 2]}'),
    ("devices/d1/telemetry", b'{"a": "nul \\u0000 inside"}'),
    ("devices/" + "x" * 65 + "/telemetry", b'{"a": 1}'),
    ("devices/bad$id/telemetry", b'{"a": 1}'),
    ("devices/d1/status", b"maybe"),
    ("guards/g1/scans", b'{"scan_id": "not-a-uuid", "tag": "T", "ts": 1763900000000}'),
    ("devices/d1/telemetry", b"\xff\xfe\x00binary"),
]


def test_bad_payloads_dead_letter_and_good_ones_all_stored(database: str,
                                                           mqtt: Broker) -> None:
    settings = ingest_settings(database, mqtt, ingest_batch_ms=200)
    site = f"s{uuid.uuid4().hex[:8]}"
    base = f"caretaker/v1/{site}/"
    with psycopg.connect(database) as c:  # a topic of an unknown site is a dead letter
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'S')", (site,))
        c.execute("INSERT INTO guards (site_id, id, name) VALUES (%s, 'g1', 'G')", (site,))
    now = int(time.time() * 1000)
    stream: list[tuple[str, bytes]] = []
    for i in range(300):
        stream.append((base + f"devices/d{i % 7}/telemetry",
                       f'{{"ts": {now - 100_000 + i}, "values": {{"v": {i}}}}}'.encode()))
        if i % 25 == 0:
            stream.append((base + BAD[i // 25][0], BAD[i // 25][1]))
    try:
        with running_worker(settings):
            publish(mqtt, stream)
            # the same good messages again, as a redelivery would bring them: nothing twice
            publish(mqtt, [m for m in stream[:100] if b'"v"' in m[1]])
            assert wait_until(lambda: _count(database, "SELECT count(*) FROM dead_letters")
                              == len(BAD) and _count(database, "SELECT count(*) FROM telemetry")
                              == 300)
            # every message, the repeated ones included, has been through a committed batch
            assert wait_until(lambda: _count(database, "SELECT coalesce(sum(messages), 0)"
                                                       " FROM ingest_stats")
                              == len(stream) + sum(b'"v"' in m[1] for m in stream[:100]))
    finally:
        forget_session(settings)
    assert _count(database, "SELECT count(*) FROM telemetry") == 300
    assert _count(database, "SELECT count(DISTINCT value) FROM telemetry") == 300
    with psycopg.connect(database, row_factory=dict_row) as c:
        dead = c.execute("SELECT topic, payload, reason, source FROM dead_letters"
                         " ORDER BY id").fetchall()
    assert sorted((r["topic"].removeprefix(base), bytes(r["payload"])) for r in dead) == sorted(BAD)
    reasons = {bytes(r["payload"]): r["reason"] for r in dead}
    assert reasons[b"{not json"].startswith("invalid JSON")
    assert "more than a day in the future" in reasons[b'{"ts": 4102444800000, "values": {"a": 1}}']
    assert "before 2000" in reasons[b'{"ts": 900000000000, "values": {"a": 1}}']
    assert "wrong type" in reasons[b'{"a": [1, 2]}']
    assert {r["source"] for r in dead} == {"mqtt"}


def test_a_message_the_database_refuses_is_dead_lettered_alone(database: str,
                                                               mqtt: Broker) -> None:
    # A rule only the database knows (here a CHECK constraint) refuses one reading: the batch
    # is written again message by message, and only that message becomes a dead letter.
    with psycopg.connect(database) as c:
        c.execute("ALTER TABLE telemetry_points"
                  " ADD CONSTRAINT sane CHECK (value IS NULL OR value < 1e9)")
    settings = ingest_settings(database, mqtt, ingest_batch_ms=500)
    site = f"s{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database) as c:
        c.execute("INSERT INTO sites (id, name) VALUES (%s, 'S')", (site,))
    base = f"caretaker/v1/{site}/devices"
    now = int(time.time() * 1000)
    stream = [(f"{base}/d{i}/telemetry", f'{{"ts": {now - i}, "values": {{"v": {i}}}}}'.encode())
              for i in range(50)]
    stream.insert(25, (f"{base}/d99/telemetry", b'{"v": 5e9}'))
    try:
        with running_worker(settings):
            publish(mqtt, stream)
            assert wait_until(lambda: _count(database, "SELECT count(*) FROM dead_letters") == 1
                              and _count(database, "SELECT count(*) FROM telemetry") == 50)
    finally:
        forget_session(settings)
    with psycopg.connect(database) as c:
        topic, reason = c.execute("SELECT topic, reason FROM dead_letters").fetchone()  # type: ignore[misc]
    assert topic == f"{base}/d99/telemetry" and reason.startswith("refused by the database")
