"""Reading ingested data back for the API: telemetry points, bucketed aggregates, latest
values, dead letters. Every query is parameterised and limited to a site when asked to.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

BUCKET = re.compile(r"^(\d{1,6})(s|m|h|d)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_PAYLOAD_TEXT = 4096


def parse_bucket(text: str) -> timedelta:
    """`30s`, `5m`, `1h`, `1d` as a timedelta; ValueError for anything else."""
    m = BUCKET.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"bucket must look like 30s, 5m, 1h or 1d, not {text!r}")
    return timedelta(**{UNITS[m.group(2)]: int(m.group(1))})


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


def telemetry_points(conn: psycopg.Connection, *, site: str, device: str | None,
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
    return [dict(r) for r in rows], int(_n(total))


def telemetry_buckets(conn: psycopg.Connection, *, site: str, device: str | None,
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
    return [dict(r) for r in rows], int(_n(total))


def latest_values(conn: psycopg.Connection, *, site: str, device: str | None,
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


def dead_letters(conn: psycopg.Connection, *, site: str | None, limit: int, offset: int
                 ) -> tuple[list[dict[str, Any]], int]:
    """Newest dead letters first (of one site's topics when `site` is given); (page, total).

    The raw payload is shown safely: as text with undecodable bytes replaced (cut at 4 KiB)
    and in full as base64.
    """
    params = {"site": site, "limit": limit, "offset": offset}
    total = conn.execute(
        "SELECT count(*) AS n FROM dead_letters"
        " WHERE %(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s",
        params).fetchone()
    rows = conn.execute(
        "SELECT id, received_at, source, topic, payload, reason FROM dead_letters"
        " WHERE %(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s"
        " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s", params).fetchall()
    items = []
    for row in rows:
        r = _as_dict(row, ("id", "received_at", "source", "topic", "payload", "reason"))
        raw = bytes(r["payload"])
        items.append({"id": r["id"], "received_at": r["received_at"], "source": r["source"],
                      "topic": r["topic"], "reason": r["reason"], "size": len(raw),
                      "payload_text": raw[:MAX_PAYLOAD_TEXT].decode("utf-8", "replace"),
                      "payload_base64": base64.b64encode(raw).decode("ascii")})
    return items, int(_n(total))


def _as_dict(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return row if isinstance(row, dict) else dict(zip(names, row, strict=True))


def _n(row: Any) -> Any:
    return row["n"] if isinstance(row, dict) else row[0]
