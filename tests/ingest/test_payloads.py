"""Topic and payload parsing, without I/O: every accepted shape and every refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from ingest.batch import Message, StatusItem, assemble, status_changes
from ingest.payloads import (
    PayloadError,
    Status,
    parse_scans,
    parse_status,
    parse_telemetry,
    parse_topic,
    telemetry_rows,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TS = NOW_MS - 60_000


def test_topics() -> None:
    t = parse_topic("caretaker/v1/riverside/devices/pump-1/telemetry")
    assert (t.kind, t.site, t.entity) == ("telemetry", "riverside", "pump-1")
    assert parse_topic("caretaker/v1/s/devices/d/status").kind == "status"
    t = parse_topic("caretaker/v1/s/guards/g-li/scans")
    assert (t.kind, t.entity) == ("scans", "g-li")


@pytest.mark.parametrize("topic, reason", [
    ("caretaker/v2/s/devices/d/telemetry", "unknown topic"),
    ("caretaker/v1/s/devices/d/attributes", "unknown topic"),
    ("caretaker/v1/s/guards/g/telemetry", "unknown topic"),
    ("caretaker/v1/s/devices/d/telemetry/x", "unknown topic"),
    ("caretaker/v1/" + "s" * 65 + "/devices/d/telemetry", "invalid site id"),
    ("caretaker/v1/s/devices/" + "d" * 65 + "/telemetry", "invalid device id"),
    ("caretaker/v1/s/devices/bad id/status", "invalid device id"),
    ("caretaker/v1/s/guards/g$/scans", "invalid guard id"),
    ("caretaker/v1//devices/d/telemetry", "invalid site id"),
])
def test_bad_topics(topic: str, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_topic(topic)
    assert err.value.reason.startswith(reason)


def test_flat_telemetry_takes_receive_time_and_all_value_types() -> None:
    points = parse_telemetry(b'{"temp": 21.5, "run": true, "stop": false, "mode": "auto", "n": 3}',
                             now_ms=NOW_MS)
    us = NOW_MS * 1000
    assert points == [(us, "temp", 21.5, None), (us, "run", 1.0, None), (us, "stop", 0.0, None),
                      (us, "mode", None, "auto"), (us, "n", 3.0, None)]


def test_ts_values_and_array_shapes() -> None:
    one = parse_telemetry(f'{{"ts": {TS}, "values": {{"temp": 1}}}}'.encode(), now_ms=NOW_MS)
    assert one == [(TS * 1000, "temp", 1.0, None)]
    many = parse_telemetry(
        f'[{{"ts": {TS}, "values": {{"a": 1}}}}, {{"ts": {TS + 1.5}, "values": {{"b": "x"}}}}]',
        now_ms=NOW_MS)
    assert many == [(TS * 1000, "a", 1.0, None), (TS * 1000 + 1500, "b", None, "x")]
    no_ts = parse_telemetry('{"values": {"a": 2}}', now_ms=NOW_MS)
    assert no_ts == [(NOW_MS * 1000, "a", 2.0, None)]


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "invalid JSON"),
    (b"\xff\xfe", "invalid JSON"),
    (b"42", "telemetry must be an object or an array"),
    (b"[]", "empty array"),
    (b"{}", "no values"),
    (b'[{"temp": 1}]', "array entry must be"),
    (b"[1]", "array entry is not an object"),
    (b'[{"values": {"a": 1}}]', "array entry has no 'ts'"),
    (b'{"ts": 1763900000000, "temp": 1}', "'ts' given without 'values'"),
    (b'{"ts": "yesterday", "values": {"a": 1}}', "timestamp is not a number"),
    (b'{"ts": true, "values": {"a": 1}}', "timestamp is not a number"),
    (b'{"ts": 900000000000, "values": {"a": 1}}', "timestamp 900000000000 is before 2000"),
    (f'{{"ts": {NOW_MS + 86_400_001}, "values": {{"a": 1}}}}'.encode(), "timestamp"),
    (b'{"ts": 1763900000000, "values": [1]}', "'values' is not an object"),
    (b'{"temp": [1, 2]}', "value of 'temp' has wrong type list"),
    (b'{"temp": {"v": 1}}', "value of 'temp' has wrong type dict"),
    (b'{"temp": null}', "value of 'temp' has wrong type NoneType"),
    (b'{"temp": NaN}', "invalid JSON"),
    (b'{"": 1}', "invalid metric name"),
    (b'{"a\\nb": 1}', "invalid metric name"),
    (('{"t": "' + "x" * 1025 + '"}').encode(), "text value of 't' is longer"),
])
def test_bad_telemetry(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_telemetry(payload, now_ms=NOW_MS)
    assert err.value.reason.startswith(reason), err.value.reason


def test_future_limit_is_one_day() -> None:
    assert parse_telemetry(f'{{"ts": {NOW_MS + 86_400_000}, "values": {{"a": 1}}}}',
                           now_ms=NOW_MS)
    with pytest.raises(PayloadError, match="more than a day in the future"):
        parse_telemetry(f'{{"ts": {NOW_MS + 86_400_001}, "values": {{"a": 1}}}}', now_ms=NOW_MS)


def test_status_payloads() -> None:
    assert parse_status(b"online", now_ms=NOW_MS) == Status("online", "status", None)
    assert parse_status(b" Offline\n", now_ms=NOW_MS) == Status("offline", "status", None)
    assert parse_status(b"offline", now_ms=NOW_MS, lwt=True) == Status("offline", "lwt", None)
    assert parse_status(b'"online"', now_ms=NOW_MS) == Status("online", "status", None)
    got = parse_status(f'{{"status": "offline", "reason": "lwt", "ts": {TS}}}', now_ms=NOW_MS)
    assert got == Status("offline", "lwt", TS * 1000)
    # a Last Will hint never turns an `online` into anything else
    assert parse_status(b"online", now_ms=NOW_MS, lwt=True).source == "status"
    for bad, reason in [(b"sleeping", "invalid JSON"), (b'"sleeping"', "unknown status"),
                        (b'{"status": 1}', "unknown status"), (b"[1]", "status must be"),
                        (b'{"status": "online", "ts": "x"}', "timestamp is not a number")]:
        with pytest.raises(PayloadError) as err:
            parse_status(bad, now_ms=NOW_MS)
        assert err.value.reason.startswith(reason)


def test_scans_single_and_array() -> None:
    sid = uuid.uuid4()
    one, bad = parse_scans("s", "g-li", {"scan_id": str(sid), "tag": "T1", "ts": TS}, now=NOW)
    assert len(one) == 1 and bad == [] and one[0].scan_id == sid and one[0].result == "ok"
    assert one[0].ts == datetime.fromtimestamp(TS / 1000, UTC) and one[0].readings == {}
    body = (f'[{{"scan_id": "{uuid.uuid4()}", "tag": "T1", "ts": {TS}, "result": "abnormal",'
            f' "readings": {{"pressure": 0.2, "no_leaks": false, "x": null}}, "note": "leak"}},'
            f' {{"scan_id": "{uuid.uuid4()}", "tag": "T2", "ts": {TS + 1000}}}]')
    many, bad = parse_scans("s", "g-li", body.encode(), now=NOW)
    assert [s.tag for s in many] == ["T1", "T2"] and bad == []
    assert many[0].result == "abnormal" and many[0].readings["no_leaks"] is False
    assert many[0].note == "leak"


@pytest.mark.parametrize("item, reason", [
    ({"tag": "T", "ts": TS}, "scan_id is missing"),
    ({"scan_id": "nope", "tag": "T", "ts": TS}, "scan_id is missing or not a UUID"),
    ({"scan_id": str(uuid.uuid4()), "ts": TS}, "tag must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T"}, "scan has no 'ts'"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": "now"}, "timestamp is not a number"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "result": "bad"}, "result must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "readings": [1]}, "readings must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "readings": {"a": [1]}},
     "reading 'a' has wrong type"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "note": 5}, "note must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "color": "red"}, "unknown scan field"),
    # decoded by another JSON parser (the API's), text may hold what PostgreSQL cannot store
    ({"scan_id": str(uuid.uuid4()), "tag": "T\ud800", "ts": TS}, "tag must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "note": "a\x00b"}, "note must be"),
    ({"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS, "readings": {"k\ud800": 1}},
     "readings contain"),
])
def test_bad_scans(item: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError) as err:  # alone, a bad scan refuses the message
        parse_scans("s", "g", item, now=NOW)
    assert err.value.reason.startswith(reason), err.value.reason
    # in an array it is refused alone, with its index and its own JSON; the others are kept
    good = {"scan_id": str(uuid.uuid4()), "tag": "T", "ts": TS}
    scans, bad = parse_scans("s", "g", [good, item, good], now=NOW)
    assert [str(s.scan_id) for s in scans] == [good["scan_id"]]  # a repeated id counts once
    assert [b.index for b in bad] == [1] and bad[0].reason.startswith(reason), bad[0].reason
    if "\\ud800" in repr(item):  # not JSON any more: kept as the item's repr, escaped
        assert b"\\ud800" in bad[0].payload
    else:
        assert orjson.loads(bad[0].payload) == item


def test_each_bad_entry_of_a_telemetry_array_is_refused_alone() -> None:
    entries: list[object] = [{"ts": TS + i, "values": {"v": i}} for i in range(5000)]
    entries[1234] = {"ts": TS, "values": {"ok": 1, "bad": [1]}}  # half read, then refused
    entries[4000] = "junk"
    rows, bad = telemetry_rows(orjson.dumps(entries), now_ms=NOW_MS, site="s", device="d")
    assert len(rows) == 4998 and {r[3] for r in rows} == {"v"}
    assert [(b.index, b.reason) for b in bad] == [
        (1234, "value of 'bad' has wrong type list (number, boolean or string expected)"),
        (4000, "array entry is not an object")]
    assert orjson.loads(bad[0].payload) == entries[1234] and bad[1].payload == b'"junk"'
    batch = assemble([Message("caretaker/v1/s/devices/d/telemetry", orjson.dumps(entries),
                              NOW_MS)])
    assert len(batch.telemetry) == 4998 and batch.seen == {("s", "d"): NOW_MS}
    assert [(d.item, d.reason.split(":")[0]) for d in batch.dead] == [
        (1234, "item 1234"), (4000, "item 4000")]


def test_bad_scan_ids_and_empty() -> None:
    for site, guard in (("bad site", "g"), ("s", "g" * 65)):
        with pytest.raises(PayloadError, match="invalid"):
            parse_scans(site, guard, [], now=NOW)
    with pytest.raises(PayloadError, match="scan is not an object"):
        parse_scans("s", "g", b'"a string"', now=NOW)
    with pytest.raises(PayloadError, match="empty array"):
        parse_scans("s", "g", b"[]", now=NOW)


def test_assemble_keeps_good_messages_beside_bad_ones() -> None:
    good = Message("caretaker/v1/s/devices/d1/telemetry", b'{"a": 1, "b": 2}', NOW_MS)
    bad = Message("caretaker/v1/s/devices/d1/telemetry", b"{oops", NOW_MS)
    bad_topic = Message("caretaker/v1/s/devices/d d/telemetry", b'{"a": 1}', NOW_MS)
    status = Message("caretaker/v1/s/devices/d2/status", b"offline", NOW_MS + 5, lwt=True)
    scan = Message("caretaker/v1/s/guards/g1/scans",
                   f'{{"scan_id": "{uuid.uuid4()}", "tag": "T", "ts": {TS}}}'.encode(), NOW_MS)
    later = Message("caretaker/v1/s/devices/d1/telemetry", b'{"a": 3}', NOW_MS + 10)
    batch = assemble([good, bad, bad_topic, status, scan, later])
    assert [r[3] for r in batch.telemetry] == ["a", "b", "a"]
    assert batch.seen == {("s", "d1"): NOW_MS + 10}
    assert [(s.device, s.status.status, s.status.source) for s in batch.statuses] == [
        ("d2", "offline", "lwt")]
    assert list(batch.scans) == [("s", "g1")]
    assert [(d.payload, d.reason.split(":")[0]) for d in batch.dead] == [
        (b"{oops", "invalid JSON"), (b'{"a": 1}', "invalid device id 'd d'")]


def test_status_changes_only_on_transitions() -> None:
    def item(status: str) -> StatusItem:
        return StatusItem("s", "d", Status(status, "status", None), 0)  # type: ignore[arg-type]

    on, off = item("online"), item("offline")
    assert status_changes(None, [on]) == [on]
    assert status_changes(True, [on, on]) == []
    assert status_changes(True, [off, off, on]) == [off, on]
    assert status_changes(False, [off]) == []


def test_an_array_with_no_good_item_is_one_dead_letter_with_its_raw_bytes() -> None:
    raw = b'[{"ts": "noon", "values": {"a": 1}}, 7]'
    batch = assemble([Message("caretaker/v1/s/devices/d/telemetry", raw, NOW_MS),
                      Message("caretaker/v1/s/guards/g/scans", b'[{"tag": "T"}]', NOW_MS)])
    assert batch.telemetry == [] and batch.seen == {} and batch.scans == {}
    assert [(d.payload, d.item, d.reason) for d in batch.dead] == [
        (raw, None, "all 2 items refused; item 0: timestamp is not a number: 'noon'"),
        (b'[{"tag": "T"}]', None,
         "all 1 items refused; item 0: scan_id is missing or not a UUID")]
