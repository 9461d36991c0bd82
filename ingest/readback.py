"""Reading ingested data back for the API: telemetry points, bucketed aggregates, latest
values, dead letters. Every query is parameterised and limited to a site when asked to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from caretaker.durations import parse_duration
from caretaker.errors import Invalid, NotFound

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


def dead_letters(conn: psycopg.Connection[Any], *, site: str | None, limit: int, offset: int
                 ) -> tuple[list[dict[str, Any]], int]:
    """Newest dead letters first (of one site's topics when `site` is given); (page, total).

    Payloads are not listed (one may be large): `dead_letter_payload` returns one.
    """
    params = {"site": site, "limit": limit, "offset": offset}
    total = conn.execute(
        "SELECT count(*) AS n FROM dead_letters"
        " WHERE %(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s",
        params).fetchone()
    rows = conn.execute(
        "SELECT id, received_at, last_received_at, count, source, topic, item, reason, size"
        " FROM dead_letters"
        " WHERE %(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s"
        " ORDER BY last_received_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
        params).fetchall()
    return [dict(r) for r in rows], int(total["n"]) if total else 0


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
