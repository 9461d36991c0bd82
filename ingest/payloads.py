"""Parsing and validation of MQTT v1 topics and payloads: bytes in, rows or a reason out.

Nothing here does I/O. A message that cannot be used at all raises `PayloadError` whose
`reason` goes to `dead_letters` as is; in an array, each bad item is returned alone as a
`BadItem` (its own dead letter) and the good items are kept.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from math import isfinite
from typing import Any, Literal

import orjson

from caretaker.clock import system_clock
from caretaker.ids import is_ident

# Metric names: printable, no control characters (they go through COPY and into labels).
METRIC = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
MAX_TEXT = 1024
MAX_TAG = 256  # as long as a checkpoint tag may be
MAX_NOTE = 4000
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
FUTURE_MS = 86_400_000  # a timestamp more than a day ahead of the receive time is refused
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TopicKind = Literal["telemetry", "status", "scans"]
# (time in µs since the epoch, metric, numeric value, text value)
Point = tuple[int, str, float | None, str | None]
# the same with the site and device in front: one telemetry row
TelemetryRow = tuple[str, str, int, str, float | None, str | None]


class PayloadError(ValueError):
    """A message that cannot be ingested; `reason` says why, for the dead-letter table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BadItem:
    """One refused item of an array payload: its index, its JSON, and why."""

    index: int
    payload: bytes
    reason: str


def bad_item(index: int, item: object, reason: str) -> BadItem:
    """A BadItem holding the item re-encoded as JSON (decoded JSON always encodes again)."""
    try:
        raw = orjson.dumps(item)
    except orjson.JSONEncodeError:  # e.g. a lone surrogate in a string
        raw = repr(item).encode("utf-8", "backslashreplace")
    return BadItem(index, raw, reason)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed v1 topic: which kind of message, for which site and device or guard."""

    kind: TopicKind
    site: str
    entity: str  # device id for telemetry/status, guard id for scans


@dataclass(frozen=True, slots=True)
class Status:
    """A device status message: online or offline, and whether it was the Last Will or an
    announced planned stop (not a fault)."""

    status: Literal["online", "offline"]
    source: Literal["status", "lwt", "planned"]
    ts_us: int | None  # the device's own time when the payload carried one


@dataclass(frozen=True, slots=True)
class Scan:
    """One checkpoint scan from a guard's handheld."""

    scan_id: uuid.UUID
    tag: str
    ts: datetime
    result: Literal["ok", "abnormal"] = "ok"
    readings: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def check_ident(value: object, what: str) -> str:
    """Return `value` if it is a valid id (`[A-Za-z0-9_.-]{1,64}`), else raise PayloadError."""
    if not isinstance(value, str) or not is_ident(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise PayloadError(f"invalid {what} id {shown!r}")
    return value


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> Topic:
    """Parse `caretaker/v1/{site}/devices/{device}/telemetry|status` or `…/guards/{guard}/scans`."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "caretaker" or parts[1] != "v1":
        raise PayloadError("unknown topic")
    _, _, site, group, entity, leaf = parts
    if group == "devices" and leaf in ("telemetry", "status"):
        kind: TopicKind = leaf  # type: ignore[assignment]
        what = "device"
    elif group == "guards" and leaf == "scans":
        kind, what = "scans", "guard"
    else:
        raise PayloadError("unknown topic")
    return Topic(kind, check_ident(site, "site"), check_ident(entity, what))


def loads(payload: bytes | str) -> Any:
    """Decode JSON, raising PayloadError on anything that is not valid JSON."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from None


def ts_to_us(ts: object, now_ms: int) -> int:
    """Validate an epoch-milliseconds timestamp and return it in microseconds."""
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise PayloadError(f"timestamp is not a number: {str(ts)[:40]!r}")
    if not math.isfinite(ts):
        raise PayloadError("timestamp is not finite")
    if ts < MIN_TS_MS:
        raise PayloadError(f"timestamp {ts} is before 2000")
    if ts > now_ms + FUTURE_MS:
        raise PayloadError(f"timestamp {ts} is more than a day in the future")
    return int(ts * 1000) if isinstance(ts, int) else round(ts * 1000)


def us_to_datetime(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def datetime_to_ms(when: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (when - EPOCH) // timedelta(milliseconds=1)


_ENTRY_KEYS = frozenset(("ts", "values"))
_good_metrics: set[str] = set()  # names already validated: most streams repeat a few
_MAX_GOOD_METRICS = 100_000


def _metric_ok(metric: str) -> None:
    if metric in _good_metrics:
        return
    if not METRIC.fullmatch(metric):
        raise PayloadError(f"invalid metric name {metric[:80]!r}")
    if len(_good_metrics) < _MAX_GOOD_METRICS:
        _good_metrics.add(metric)


def _values(values: object, site: str, device: str, ts_us: int, out: list[TelemetryRow]) -> None:
    if type(values) is not dict:
        raise PayloadError("'values' is not an object")
    if not values:
        raise PayloadError("no values")
    append = out.append
    for metric, value in values.items():
        _metric_ok(metric)
        kind = type(value)
        if kind is float:
            if not isfinite(value):
                raise PayloadError(f"value of {metric!r} is not finite")
            append((site, device, ts_us, metric, value, None))
        elif kind is int:
            number = float(value)
            if not isfinite(number):
                raise PayloadError(f"value of {metric!r} is not finite")
            append((site, device, ts_us, metric, number, None))
        elif kind is bool:
            append((site, device, ts_us, metric, 1.0 if value else 0.0, None))
        elif kind is str:
            if len(value) > MAX_TEXT:
                raise PayloadError(f"text value of {metric!r} is longer than {MAX_TEXT}")
            if "\x00" in value:
                raise PayloadError(f"text value of {metric!r} contains a NUL character")
            append((site, device, ts_us, metric, None, value))
        else:
            raise PayloadError(
                f"value of {metric!r} has wrong type {kind.__name__}"
                " (number, boolean or string expected)")


def _entry(entry: object, site: str, device: str, now_ms: int, out: list[TelemetryRow]) -> None:
    if type(entry) is not dict:
        raise PayloadError("array entry is not an object")
    if "values" not in entry or not entry.keys() <= _ENTRY_KEYS:
        raise PayloadError("array entry must be {\"ts\": ms, \"values\": {...}}")
    if "ts" not in entry:
        raise PayloadError("array entry has no 'ts'")
    _values(entry["values"], site, device, ts_to_us(entry["ts"], now_ms), out)


def telemetry_rows(payload: bytes | str, *, now_ms: int, site: str, device: str
                   ) -> tuple[list[TelemetryRow], list[BadItem]]:
    """Parse the three ThingsBoard shapes into rows (site, device, time µs, metric, value, text).

    Shapes: `{"m": v}` (at receive time), `{"ts": ms, "values": {...}}`, or an array of the
    latter. `now_ms` is the receive time, also the reference of the "more than a day in the
    future" check. A bad entry of an array is returned as a BadItem and the others are kept.
    """
    data = loads(payload)
    out: list[TelemetryRow] = []
    bad: list[BadItem] = []
    if type(data) is dict:
        if "values" in data and data.keys() <= _ENTRY_KEYS:
            ts_us = ts_to_us(data["ts"], now_ms) if "ts" in data else now_ms * 1000
            _values(data["values"], site, device, ts_us, out)
        elif "ts" in data:
            raise PayloadError("'ts' given without 'values'")
        else:
            _values(data, site, device, now_ms * 1000, out)
    elif type(data) is list:
        if not data:
            raise PayloadError("empty array")
        for index, entry in enumerate(data):
            mark = len(out)
            try:
                _entry(entry, site, device, now_ms, out)
            except PayloadError as exc:
                del out[mark:]  # the readings of a half-read entry go with it
                bad.append(bad_item(index, entry, exc.reason))
    else:
        raise PayloadError(f"telemetry must be an object or an array, not {type(data).__name__}")
    return out, bad


def parse_telemetry(payload: bytes | str, *, now_ms: int) -> list[Point]:
    """Readings of a telemetry payload as (time µs, metric, value, text); a bad entry raises."""
    rows, bad = telemetry_rows(payload, now_ms=now_ms, site="", device="")
    if bad:
        raise PayloadError(bad[0].reason)
    return [r[2:] for r in rows]


def parse_status(payload: bytes | str, *, now_ms: int, lwt: bool = False) -> Status:
    """Parse `online` / `offline`, or JSON `{"status": ..., "reason": "lwt", "ts": ms}`.

    A plain `offline` cannot be told apart from a Last Will on the wire, so it counts as
    source "status" unless `lwt` (an MQTT v5 user property source=lwt) or a JSON reason says so.
    `{"status": "offline", "reason": "planned"}` is an orderly stop the device announces (source
    "planned"): the offline rules do not treat it, or the silence after it, as a fault.
    """
    raw = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    text = raw.strip()
    ts_us: int | None = None
    reason: object = None
    if text.lower() in ("online", "offline"):
        status = text.lower()
    else:
        data = loads(text)
        if isinstance(data, str):
            status = data.strip().lower()
        elif isinstance(data, dict):
            status = data.get("status")  # type: ignore[assignment]
            reason = data.get("reason")
            if "ts" in data:
                ts_us = ts_to_us(data["ts"], now_ms)
        else:
            raise PayloadError("status must be 'online', 'offline' or {\"status\": ...}")
    if status not in ("online", "offline"):
        raise PayloadError(f"unknown status {str(status)[:40]!r}")
    source = "status"
    if status == "offline" and (lwt or reason == "lwt"):
        source = "lwt"
    elif status == "offline" and reason == "planned":
        source = "planned"
    return Status(status, source, ts_us)  # type: ignore[arg-type]


def _storable(text: str) -> bool:
    """True unless `text` has a NUL or a lone surrogate (PostgreSQL stores neither)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON decoded by another parser than orjson can carry one
        return False
    return True


def _scan(item: object, now_ms: int) -> Scan:
    if not isinstance(item, dict):
        raise PayloadError("scan is not an object")
    unknown = item.keys() - {"scan_id", "tag", "ts", "result", "readings", "note"}
    if unknown:
        raise PayloadError(f"unknown scan field(s): {', '.join(sorted(unknown))[:120]}")
    try:
        scan_id = uuid.UUID(str(item["scan_id"])) if isinstance(item.get("scan_id"), str) else None
    except ValueError:
        scan_id = None
    if scan_id is None:
        raise PayloadError("scan_id is missing or not a UUID")
    tag = item.get("tag")
    if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG or not _storable(tag):
        raise PayloadError(f"tag must be a non-empty string of at most {MAX_TAG} characters")
    if "ts" not in item:
        raise PayloadError("scan has no 'ts'")
    ts = us_to_datetime(ts_to_us(item["ts"], now_ms))
    result = item.get("result", "ok")
    if result not in ("ok", "abnormal"):
        raise PayloadError("result must be 'ok' or 'abnormal'")
    readings = item.get("readings") or {}
    if not isinstance(readings, dict):
        raise PayloadError("readings must be an object")
    for key, value in readings.items():
        if not _storable(key) or (isinstance(value, str) and not _storable(value)):
            raise PayloadError("readings contain a NUL character or a lone surrogate")
        if value is not None and not isinstance(value, bool | int | float | str):
            raise PayloadError(f"reading {key[:60]!r} has wrong type {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"reading {key[:60]!r} is not finite")
    note = item.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE
                             or not _storable(note)):
        raise PayloadError(f"note must be a string of at most {MAX_NOTE} characters")
    return Scan(scan_id, tag, ts, result, readings, note)


def parse_scans(site: str, guard: str, payload: bytes | str | list[Any] | dict[str, Any], *,
                now: datetime | None = None) -> tuple[list[Scan], list[BadItem]]:
    """Validate one scan or an array of scans (offline sync) of a guard at a site.

    Accepts raw bytes/str (JSON) or already decoded JSON. Returns the good scans (the first
    of each scan_id) and the bad items of an array; raises PayloadError when the site or
    guard id is invalid, the JSON is not an object or a non-empty array, or the single scan
    given alone is bad.
    """
    check_ident(site, "site")
    check_ident(guard, "guard")
    now_ms = datetime_to_ms(now or system_clock())
    data = loads(payload) if isinstance(payload, bytes | str) else payload
    if not isinstance(data, list):
        return [_scan(data, now_ms)], []
    if not data:
        raise PayloadError("empty array")
    scans: list[Scan] = []
    bad: list[BadItem] = []
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(data):
        try:
            scan = _scan(item, now_ms)
        except PayloadError as exc:
            bad.append(bad_item(index, item, exc.reason))
            continue
        if scan.scan_id not in seen:  # a scan twice in one array is one scan
            seen.add(scan.scan_id)
            scans.append(scan)
    return scans, bad
