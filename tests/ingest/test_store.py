"""Batch writes against the real database: idempotence, outbox rows, devices, scans,
dead letters (one per bad item, counted when received again), unknown sites and guards."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from psycopg.rows import dict_row

from caretaker.retention import apply_retention
from ingest.batch import Message, assemble
from ingest.payloads import parse_scans
from ingest.store import (
    EventMetrics,
    SeriesIds,
    copy_text,
    store_scans,
    store_telemetry,
    write_batch,
)
from rules.catalog import watched_metrics

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _site(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO sites (id, name) VALUES ('s', 'Site')")
    conn.execute("INSERT INTO checkpoints (site_id, id, name, tag)"
                 " VALUES ('s', 'cp-1', 'Gate', 'T1')")
    conn.execute("INSERT INTO guards (site_id, id, name) VALUES ('s', 'g-li', 'Li')")


def _count(conn: psycopg.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"])  # noqa: S608


def test_store_scans_resolves_checkpoints_and_is_idempotent(conn: psycopg.Connection) -> None:
    _site(conn)
    body = [{"scan_id": str(uuid.uuid4()), "tag": "T1", "ts": NOW_MS - 1000},
            {"scan_id": str(uuid.uuid4()), "tag": "UNKNOWN", "ts": NOW_MS - 500,
             "result": "abnormal", "readings": {"p": 0.1}}]
    scans, _ = parse_scans("s", "g-li", body, now=NOW)
    stored = store_scans(conn, "s", "g-li", scans, received_at=NOW)
    assert sorted(stored) == sorted(s.scan_id for s in scans)
    assert store_scans(conn, "s", "g-li", scans, received_at=NOW) == []
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
        Message("caretaker/v1/s/devices/x9/telemetry", b'{"on": true}', NOW_MS),
        Message("caretaker/v1/s/devices/p2/status", b"offline", NOW_MS, lwt=True),
        Message("caretaker/v1/s/devices/p2/telemetry", b"[]", NOW_MS),
    ]
    metrics = EventMetrics(watched_metrics).get(conn)
    assert metrics == ["pressure"]
    first = write_batch(conn, assemble(msgs), event_metrics=metrics)
    assert (first.telemetry, first.dead_letters) == (4, 1)
    assert sorted(first.registered) == [("s", "p1"), ("s", "x9")]
    assert first.events == {"telemetry", "status"}
    again = write_batch(conn, assemble(msgs), event_metrics=metrics)
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
    # the bad message, received twice, is one dead letter counted twice
    dead = conn.execute("SELECT topic, payload, reason, count, item FROM dead_letters").fetchall()
    assert [(bytes(d["payload"]), d["reason"], d["count"], d["item"]) for d in dead] == [
        (b"[]", "empty array", 2, None)]


def test_outbox_events_for_the_metrics_asked_for_or_all(conn: psycopg.Connection) -> None:
    _site(conn)
    asked: list[int] = []
    cache = EventMetrics(lambda c: asked.append(1) or ["b", "a", "b"], every=3600)
    assert cache.get(conn) == ["a", "b"] and cache.get(conn) == ["a", "b"] and len(asked) == 1
    assert EventMetrics().get(conn) is None  # no provider: every metric
    reading = Message("caretaker/v1/s/devices/d/telemetry", b'{"a": 1, "z": 2}', NOW_MS)
    for metrics, expected in (([], None), (["z"], ["z"]), (None, ["a", "z"])):
        conn.execute("DELETE FROM telemetry_points")
        conn.execute("DELETE FROM ingest_events")
        write_batch(conn, assemble([reading]), event_metrics=metrics)
        row = conn.execute("SELECT payload FROM ingest_events WHERE kind = 'telemetry'"
                           ).fetchone()
        got = None if row is None else sorted(e["metric"] for e in row["payload"])
        assert got == expected, metrics


def test_an_unknown_site_is_a_dead_letter_not_a_new_site(conn: psycopg.Connection) -> None:
    _site(conn)
    scan = orjson.dumps({"scan_id": str(uuid.uuid4()), "tag": "T1", "ts": NOW_MS - 1000})
    msgs = [Message("caretaker/v1/nowhere/devices/x9/telemetry", b'{"on": true}', NOW_MS),
            Message("caretaker/v1/nowhere/devices/x9/status", b"online", NOW_MS),
            Message("caretaker/v1/nowhere/guards/g-li/scans", scan, NOW_MS),
            Message("caretaker/v1/s/guards/g-nobody/scans", scan, NOW_MS),
            Message("caretaker/v1/s/devices/new-one/telemetry", b'{"on": true}', NOW_MS)]
    written = write_batch(conn, assemble(msgs))
    assert (written.telemetry, written.scans, written.dead_letters) == (1, 0, 4)
    assert written.registered == [("s", "new-one")]  # a known site's new device: welcome
    assert [r["id"] for r in conn.execute("SELECT id FROM sites").fetchall()] == ["s"]
    assert _count(conn, "devices") == 1 and _count(conn, "scans") == 0
    dead = conn.execute("SELECT topic, reason FROM dead_letters ORDER BY topic").fetchall()
    assert [(d["topic"].split("/", 2)[2], d["reason"]) for d in dead] == [
        ("nowhere/devices/x9/status", "unknown site 'nowhere'"),
        ("nowhere/devices/x9/telemetry", "unknown site 'nowhere'"),
        ("nowhere/guards/g-li/scans", "unknown site 'nowhere'"),
        ("s/guards/g-nobody/scans", "unknown guard 'g-nobody' of site 's'")]


def test_each_bad_item_is_a_dead_letter_and_the_good_items_are_stored(
        conn: psycopg.Connection) -> None:
    _site(conn)
    points: list[object] = [{"ts": NOW_MS - 10_000_000 + i, "values": {"v": i}}
                            for i in range(5000)]
    points[777] = {"ts": "soon", "values": {"v": -1}}
    scans: list[object] = [{"scan_id": str(uuid.uuid4()), "tag": "T1", "ts": NOW_MS - 9000 + i}
                           for i in range(10)]
    scans[3] = {"scan_id": "not-a-uuid", "tag": "T1", "ts": NOW_MS}
    msgs = [Message("caretaker/v1/s/devices/d1/telemetry", orjson.dumps(points), NOW_MS),
            Message("caretaker/v1/s/guards/g-li/scans", orjson.dumps(scans), NOW_MS)]
    for _ in range(2):  # delivered, then delivered again: nothing twice
        written = write_batch(conn, assemble(msgs))
    assert (_count(conn, "telemetry"), _count(conn, "scans"), _count(conn, "dead_letters")) == (
        4999, 9, 2)
    assert written.dead_letters == 2 and written.telemetry == 0 and written.scans == 0
    dead = conn.execute("SELECT topic, item, reason, payload, count FROM dead_letters"
                        " ORDER BY topic").fetchall()
    assert [(d["topic"].rsplit("/", 1)[1], d["item"], d["reason"], d["count"]) for d in dead] == [
        ("telemetry", 777, "item 777: timestamp is not a number: 'soon'", 2),
        ("scans", 3, "item 3: scan_id is missing or not a UUID", 2)]
    assert orjson.loads(dead[0]["payload"]) == points[777]


def test_a_scan_id_is_stored_once_whatever_its_timestamp(conn: psycopg.Connection,
                                                         database: str) -> None:
    _site(conn)
    conn.commit()
    sid = str(uuid.uuid4())

    def scan(ts: int) -> list[object]:
        return parse_scans("s", "g-li", {"scan_id": sid, "tag": "T1", "ts": ts}, now=NOW)[0]

    assert len(store_scans(conn, "s", "g-li", scan(NOW_MS - 5000), received_at=NOW)) == 1
    assert store_scans(conn, "s", "g-li", scan(NOW_MS - 4000), received_at=NOW) == []
    conn.commit()
    # two writers at once: the second waits for the first's scan_id and then stores nothing
    other = str(uuid.uuid4())
    with psycopg.connect(database, row_factory=dict_row) as a, \
            psycopg.connect(database, row_factory=dict_row) as b:
        first = parse_scans("s", "g-li", {"scan_id": other, "tag": "T1", "ts": NOW_MS - 3000},
                            now=NOW)[0]
        second = parse_scans("s", "g-li", {"scan_id": other, "tag": "T1", "ts": NOW_MS - 2000},
                             now=NOW)[0]
        assert len(store_scans(a, "s", "g-li", first, received_at=NOW)) == 1
        pid = b.info.backend_pid
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(
            store_scans(b, "s", "g-li", second, received_at=NOW)))
        thread.start()
        waiting = "SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = %s"
        blocked = False
        for _ in range(1000):  # until b is blocked on a's uncommitted scan_id
            blocked = conn.execute(waiting, (pid,)).fetchone()["w"] == "Lock"
            conn.rollback()  # a new snapshot of pg_stat_activity next time
            if blocked:
                break
            threading.Event().wait(0.01)
        a.commit()
        thread.join(10)
        b.commit()
    assert blocked and result == [[]]
    assert conn.execute("SELECT count(*) AS n FROM scans WHERE scan_id = ANY(%s::uuid[])",
                        ([sid, other],)).fetchone()["n"] == 2


def test_retention_prunes_old_dead_letters_and_scan_ids(conn: psycopg.Connection) -> None:
    _site(conn)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=2)
    write_batch(conn, assemble([
        Message("caretaker/v1/s/devices/d/telemetry", b"{old", int(old.timestamp() * 1000)),
        Message("caretaker/v1/s/devices/d/telemetry", b"{recent",
                int(recent.timestamp() * 1000))]))
    scans, _ = parse_scans("s", "g-li", [
        {"scan_id": str(uuid.uuid4()), "tag": "T1", "ts": int(t.timestamp() * 1000)}
        for t in (NOW - timedelta(days=400), recent)], now=NOW)
    store_scans(conn, "s", "g-li", scans, received_at=NOW)
    apply_retention(conn, days=365, now=NOW, dead_letter_days=30)
    left = conn.execute("SELECT payload FROM dead_letters").fetchall()
    assert [bytes(r["payload"]) for r in left] == [b"{recent"]
    assert [r["scan_id"] for r in conn.execute("SELECT scan_id FROM scan_ids").fetchall()] == [
        scans[1].scan_id]
    assert _count(conn, "scans") == 1


def test_text_values_and_odd_metric_names_survive_copy(conn: psycopg.Connection) -> None:
    _site(conn)
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


def _blocked(conn: psycopg.Connection, pid: int) -> bool:
    """Wait (with a deadline) until backend `pid` waits on a lock; whether it did."""
    waiting = "SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = %s"
    for _ in range(1000):
        blocked = conn.execute(waiting, (pid,)).fetchone()["w"] == "Lock"
        conn.rollback()  # a new snapshot of pg_stat_activity next time
        if blocked:
            return True
        threading.Event().wait(0.01)
    return False


def test_two_writers_seeing_a_new_series_at_once_get_one_id(conn: psycopg.Connection,
                                                            database: str) -> None:
    _site(conn)
    conn.commit()
    topic = "caretaker/v1/s/devices/new/telemetry"

    def reading(metric: str, ts: int, value: float) -> Message:
        return Message(topic, orjson.dumps({"ts": ts, "values": {metric: value}}), NOW_MS)

    for first_commits in (True, False):  # a's new series committed, or rolled back
        metric = f"m{int(first_commits)}"
        with psycopg.connect(database, row_factory=dict_row) as a, \
                psycopg.connect(database, row_factory=dict_row) as b:
            write_batch(a, assemble([reading(metric, NOW_MS, 1)]))
            result: list[object] = []
            second = assemble([reading(metric, NOW_MS + 1, 2)])
            thread = threading.Thread(target=lambda b=b, batch=second, out=result: out.append(
                write_batch(b, batch).telemetry))
            thread.start()
            blocked = _blocked(conn, b.info.backend_pid)  # on a's uncommitted series
            if first_commits:
                a.commit()
            else:
                a.rollback()
            thread.join(10)
            b.commit()
        assert blocked and result == [1]
        ids = conn.execute("SELECT id FROM series WHERE metric = %s", (metric,)).fetchall()
        points = conn.execute("SELECT value FROM telemetry WHERE metric = %s ORDER BY time",
                              (metric,)).fetchall()
        conn.rollback()
        assert len(ids) == 1
        assert [p["value"] for p in points] == ([1, 2] if first_commits else [2])


def test_latest_readings_move_forward_and_new_points_queue_their_hour(
        conn: psycopg.Connection) -> None:
    _site(conn)
    topic = "caretaker/v1/s/devices/d/telemetry"

    def reading(ts: int, value: float) -> Message:
        return Message(topic, orjson.dumps({"ts": ts, "values": {"p": value}}), NOW_MS)

    hour = 3_600_000
    write_batch(conn, assemble([reading(NOW_MS - hour, 1), reading(NOW_MS, 2)]))
    write_batch(conn, assemble([reading(NOW_MS - 5 * hour, 3)]))  # late: not the latest
    latest = conn.execute("SELECT time, value FROM latest_readings").fetchall()
    assert [(r["time"], r["value"]) for r in latest] == [(NOW, 2)]
    conn.execute("DELETE FROM rollup_pending WHERE bucket = %s", (NOW,))  # rolled up
    write_batch(conn, assemble([reading(NOW_MS, 2)]))  # redelivered: nothing new to roll up
    buckets = [r["bucket"] for r in conn.execute(
        "SELECT bucket FROM rollup_pending ORDER BY bucket")]
    assert buckets == [NOW - timedelta(hours=5), NOW - timedelta(hours=1)]
    write_batch(conn, assemble([reading(NOW_MS + 1000, 4)]))
    assert conn.execute("SELECT value FROM latest_readings").fetchone()["value"] == 4
    assert _count(conn, "rollup_pending") == 3 and _count(conn, "series") == 1


def test_series_ids_are_kept_only_once_their_transaction_committed(
        conn: psycopg.Connection) -> None:
    _site(conn)
    conn.commit()
    series = SeriesIds()
    key = ("s", "d", "m")
    first = series.resolve(conn, [key])[key]
    assert series.pending == {key: first} and series.known == {}
    conn.rollback()
    series.rollback()  # the series row went with the transaction: its id is forgotten
    second = series.resolve(conn, [key])[key]
    assert second != first and _count(conn, "series") == 1
    conn.commit()
    series.commit()
    assert series.known == {key: second} and series.pending == {}
    rows = [("s", "d", NOW_MS * 1000, "m", 1.5, None), ("s", "e", NOW_MS * 1000, "m", None, "x")]
    assert copy_text(rows, series.known) is None  # ("s", "e", "m") is not known yet
    assert store_telemetry(conn, rows, series=series) == (2, False)
    conn.commit()
    series.commit()
    assert copy_text(rows, series.known) == (
        f"{second}\t{NOW_MS * 1000}\t1.5\t\\N\n"
        f"{series.known[('s', 'e', 'm')]}\t{NOW_MS * 1000}\t\\N\tx\n").encode()


def test_statuses_and_readings_of_one_batch_apply_in_arrival_order(
        conn: psycopg.Connection) -> None:
    _site(conn)
    tel = "caretaker/v1/s/devices/{}/telemetry"
    st = "caretaker/v1/s/devices/{}/status"

    def reading(device: str) -> Message:
        return Message(tel.format(device), orjson.dumps({"ts": NOW_MS, "values": {"v": 1}}),
                       NOW_MS)

    def status(device: str, what: str, lwt: bool = False) -> Message:
        return Message(st.format(device), what.encode(), NOW_MS, lwt)

    write_batch(conn, assemble([status("a", "online"), reading("a"),  # announced, then data
                                reading("b"), status("b", "online"),  # data, then announced
                                reading("c"), status("c", "offline", lwt=True)]))  # then died
    history = conn.execute("SELECT device_id, status, source FROM device_status"
                           " ORDER BY device_id, time, status DESC").fetchall()
    assert [(h["device_id"], h["status"], h["source"]) for h in history] == [
        ("a", "online", "status"), ("b", "online", "telemetry"),
        ("c", "online", "telemetry"), ("c", "offline", "lwt")]
    online = {r["id"]: r["online"] for r in conn.execute("SELECT id, online FROM devices")}
    assert online == {"a": True, "b": True, "c": False}
    write_batch(conn, assemble([status("a", "offline", lwt=True), reading("a")]))  # came back
    assert conn.execute("SELECT online FROM devices WHERE id = 'a'").fetchone()["online"]
