"""Reading ingested data back for the API: telemetry points, bucketed aggregates, latest
values, dead letters, devices' status history. Every query is parameterised and limited to
a site when asked to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

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


def _where(site: str, device: str | None, metric: str | None, start: datetime,
           end: datetime) -> tuple[sql.Composable, dict[str, Any]]:
    clauses = ["site_id = %(site)s", "time >= %(start)s", "time < %(end)s"]
    params: dict[str, Any] = {"site": site, "start": start, "end": end}
    if device is not None:
        clauses.append("device_id = %(device)s")
        params["device"] = device
    if metric is not None:
        clauses.append("metric = %(metric)s")
        params["metric"] = metric
    return sql.SQL(" AND ".join(clauses)), params  # fixed strings; values are parameters


def telemetry_points(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                     metric: str | None, start: datetime, end: datetime, limit: int,
                     offset: int) -> tuple[list[dict[str, Any]], int]:
    """Raw readings in [start, end), oldest first; (page, total)."""
    where, params = _where(site, device, metric, start, end)
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM telemetry WHERE {}").format(where),
                         params).fetchone()
    rows = conn.execute(
        sql.SQL("SELECT time, device_id AS device, metric, value, text_value AS text"
                " FROM telemetry WHERE {} ORDER BY time, device_id, metric"
                " LIMIT %(limit)s OFFSET %(offset)s").format(where),
        {**params, "limit": limit, "offset": offset}).fetchall()
    return [dict(r) for r in rows], int(total["n"]) if total else 0


def telemetry_buckets(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                      metric: str | None, start: datetime, end: datetime, bucket: timedelta,
                      limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """time_bucket aggregates (min, max, avg, count, last) per device and metric; (page, total)."""
    where, params = _where(site, device, metric, start, end)
    params["bucket"] = bucket
    grouped = sql.SQL(
        "SELECT time_bucket(%(bucket)s, time) AS time, device_id AS device, metric,"
        " min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count,"
        " last(value, time) AS last, last(text_value, time) AS last_text"
        " FROM telemetry WHERE {} GROUP BY 1, 2, 3").format(where)
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM ({}) g").format(grouped),
                         params).fetchone()
    rows = conn.execute(
        sql.SQL("{} ORDER BY 1, 2, 3 LIMIT %(limit)s OFFSET %(offset)s").format(grouped),
        {**params, "limit": limit, "offset": offset}).fetchall()
    return [dict(r) for r in rows], int(total["n"]) if total else 0


def latest_values(conn: psycopg.Connection[Any], *, site: str, device: str | None,
                  since: datetime) -> list[dict[str, Any]]:
    """The newest reading of each device and metric of a site received after `since`."""
    params: dict[str, Any] = {"site": site, "since": since, "device": device}
    rows = conn.execute(
        "SELECT DISTINCT ON (device_id, metric) device_id AS device, metric, time, value,"
        " text_value AS text FROM telemetry"
        " WHERE site_id = %(site)s AND time >= %(since)s"
        " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
        " ORDER BY device_id, metric, time DESC", params).fetchall()
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
