"""Reading ingested data back for the API: telemetry points, bucketed aggregates (from the
rollups where they answer exactly), latest values, dead letters, devices' status history.
Every query is parameterised and limited to a site when asked to; telemetry pages by keyset
(cursor), never counting.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from caretaker import resolution
from caretaker.durations import parse_duration
from caretaker.errors import Invalid, NotFound
from caretaker.paging import Key, KeysetPage, Where, fetch_keyset

MIN_BUCKET = timedelta(seconds=1)


def parse_bucket(text: str, *, what: str = "bucket") -> timedelta:
    """A time bucket or look-back span (`30s`, `5m`, `1h`, `1d`) of at least a second."""
    width = parse_duration(text, what=what)
    if width < MIN_BUCKET:
        raise Invalid(f"{what}: {text!r} is shorter than a second")
    return width


@dataclass(frozen=True)
class Cursor:
    """Where the previous page of a telemetry read ended: its last (time, device, metric)."""

    time: datetime
    device: str
    metric: str

    def encode(self) -> str:
        """The opaque `cursor` a client sends back for the next page."""
        raw = json.dumps([self.time.isoformat(), self.device, self.metric]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """A cursor from its opaque text; Invalid when it was not made by `encode`."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            when, device, metric = json.loads(raw)
            at = datetime.fromisoformat(when)
            if at.tzinfo is None or not isinstance(device, str) or not isinstance(metric, str):
                raise ValueError(text)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise Invalid("cursor: not one this API gave") from exc
        return cls(at, device, metric)


def _next(rows: list[dict[str, Any]], limit: int) -> str | None:
    """The cursor after a full page (a short page is the last)."""
    if len(rows) < limit:
        return None
    last = rows[-1]
    return Cursor(last["time"], last["device"], last["metric"]).encode()


def _series(site: str, device: str | None, metric: str | None
            ) -> tuple[sql.Composable, dict[str, Any]]:
    """The CTE `s`: a site's series (id, device_id, metric), narrowed to a device/metric."""
    clauses = ["site_id = %(site)s"]
    params: dict[str, Any] = {"site": site}
    if device is not None:
        clauses.append("device_id = %(device)s")
        params["device"] = device
    if metric is not None:
        clauses.append("metric = %(metric)s")
        params["metric"] = metric
    # fixed strings; the values are parameters
    return sql.SQL("s AS MATERIALIZED (SELECT id, device_id, metric FROM series WHERE {})"
                   ).format(sql.SQL(" AND ".join(clauses))), params


_AFTER = sql.SQL(" AND ({}, {}, {}) > (%(c_time)s, %(c_device)s, %(c_metric)s)")


def _cursor_params(cursor: Cursor | None, start: datetime) -> tuple[datetime, dict[str, Any]]:
    """The scan's start moved up to the cursor's time, and the cursor's parameters."""
    if cursor is None:
        return start, {}
    return max(start, cursor.time), {"c_time": cursor.time, "c_device": cursor.device,
                                     "c_metric": cursor.metric}


def telemetry_points(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                     metric: str | None, start: datetime, end: datetime, limit: int,
                     cursor: Cursor | None = None, offset: int = 0
                     ) -> tuple[list[dict[str, Any]], str | None]:
    """Raw readings in [start, end), oldest first, a page after `cursor`; (page, next cursor)."""
    cte, params = _series(site, device, metric)
    start, extra = _cursor_params(cursor, start)
    query = sql.SQL(
        "WITH {} SELECT t.time, s.device_id AS device, s.metric, t.value, t.text_value AS text"
        " FROM telemetry_points t JOIN s ON s.id = t.series_id"
        " WHERE t.series_id IN (SELECT id FROM s) AND t.time >= %(start)s AND t.time < %(end)s"
        "{} ORDER BY 1, 2, 3 LIMIT %(limit)s OFFSET %(offset)s").format(
            cte, _AFTER.format(sql.SQL("t.time"), sql.SQL("s.device_id"), sql.SQL("s.metric"))
            if cursor else sql.SQL(""))
    rows = [dict(r) for r in conn.cursor(row_factory=dict_row).execute(query, {
        **params, **extra, "start": start, "end": end, "limit": limit, "offset": offset})]
    return rows, _next(rows, limit)


def telemetry_buckets(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                      metric: str | None, start: datetime, end: datetime, bucket: timedelta,
                      tier: resolution.Tier, limit: int, cursor: Cursor | None = None,
                      offset: int = 0) -> tuple[list[dict[str, Any]], str | None]:
    """Aggregates per `bucket` (min, max, avg, count, last) per device and metric, from the
    tier's rollups where they are whole and settled, else from raw points; (page, next cursor).

    Exact whatever the tier: telemetry_rollup (migration 020) reads the ragged edges of the
    range and the hours still pending (not rolled up yet, or changed by late points) raw.
    """
    scan_start, extra = _cursor_params(cursor, start)
    query = sql.SQL(
        "SELECT r.time, r.device_id AS device, r.metric, r.min, r.max, r.avg, r.count, r.last,"
        " r.last_text FROM telemetry_rollup(%(site)s, %(device)s, %(metric)s, %(start)s,"
        " %(end)s, %(bucket)s, %(tier)s) r WHERE true{}"
        " ORDER BY 1, 2, 3 LIMIT %(limit)s OFFSET %(offset)s").format(
            _AFTER.format(sql.SQL("r.time"), sql.SQL("r.device_id"), sql.SQL("r.metric"))
            if cursor else sql.SQL(""))
    rows = [dict(r) for r in conn.cursor(row_factory=dict_row).execute(query, {
        **extra, "site": site, "device": device, "metric": metric, "start": scan_start,
        "end": end, "bucket": bucket, "tier": tier.name, "limit": limit, "offset": offset})]
    return rows, _next(rows, limit)


def latest_values(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                  since: datetime, limit: int) -> list[dict[str, Any]]:
    """The newest reading of each device and metric of a site received after `since`, from
    the small table the ingest keeps current (no scan of the points)."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT s.device_id AS device, s.metric, l.time, l.value, l.text_value AS text"
        " FROM series s JOIN latest_readings l ON l.series_id = s.id"
        " WHERE s.site_id = %(site)s AND l.time >= %(since)s"
        " AND (%(device)s::text IS NULL OR s.device_id = %(device)s)"
        " ORDER BY 1, 2 LIMIT %(limit)s",
        {"site": site, "since": since, "device": device, "limit": limit}).fetchall()
    return [dict(r) for r in rows]


class DeadLetterNotFound(NotFound):
    """No such dead letter (in the caller's scope)."""


DEAD_LETTER_KEYS = (Key("last_received_at", "last_received_at", descending=True),
                    Key("id", "id", descending=True))


def dead_letters(conn: psycopg.Connection[Any], *, site: str | None, limit: int, offset: int,
                 cursor: str | None = None) -> KeysetPage:
    """Newest dead letters first (of one site's topics when `site` is given): one page after
    `cursor` (or from `offset`), the total exact up to paging.COUNT_CAP.

    Payloads are not listed (one may be large): `dead_letter_payload` returns one.
    """
    where = Where()
    if site is not None:
        where.add("split_part(topic, '/', 3) = %s", site)
    return fetch_keyset(conn, "dead_letters", where, keys=DEAD_LETTER_KEYS, limit=limit,
                        offset=offset, cursor=cursor,
                        select="id, received_at, last_received_at, count, source, topic, item,"
                               " reason, size")


STATUS_KEYS = (Key("time", "time", descending=True), Key("site_id", "site_id", descending=True),
               Key("device_id", "device_id", descending=True),
               Key("status", "status", descending=True))


def status_history(conn: psycopg.Connection[Any], *, site: str | None, device: str | None,
                   status: str | None, since: datetime | None, until: datetime | None,
                   limit: int, offset: int, cursor: str | None) -> KeysetPage:
    """Devices' online/offline changes, newest first: one page after `cursor` (or from
    `offset`), the total exact up to paging.COUNT_CAP (device_status is a hypertable)."""
    where = Where()
    where.equals_all({"site_id": site, "device_id": device, "status": status})
    where.within("time", since, until)
    return fetch_keyset(conn, "device_status", where, keys=STATUS_KEYS, limit=limit,
                        offset=offset, cursor=cursor,
                        select="time, site_id, device_id, status, source")


def dead_letter_payload(conn: psycopg.Connection[Any], dead_letter_id: int, *,
                        site: str | None, cap: int) -> dict[str, Any]:
    """One dead letter's raw payload, cut at `cap` bytes (the database cuts it, not Python)."""
    row = conn.execute(
        "SELECT id, size, substring(payload FROM 1 FOR %(cap)s) AS payload FROM dead_letters"
        " WHERE id = %(id)s AND (%(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s)",
        {"id": dead_letter_id, "site": site, "cap": cap}).fetchone()
    if row is None:
        raise DeadLetterNotFound(f"dead letter {dead_letter_id} not found")
    raw = bytes(row["payload"])
    return {"id": row["id"], "size": row["size"], "truncated": row["size"] > len(raw),
            "payload": raw}
