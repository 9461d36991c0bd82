"""Points written through the real ingest (ingest.store.write_batch), and the aggregates a
bucket of them should have, computed here in Python to compare with the rollups."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg

from caretaker.resolution import EPOCH
from ingest.batch import Message, assemble
from ingest.store import write_batch

SITE = "s1"


class Point(NamedTuple):
    device: str
    metric: str
    time: datetime
    value: float | str


def ingest(conn: psycopg.Connection[Any], points: Iterable[Point], *,
           received: datetime | None = None) -> None:
    """Write points as the ingest does (one message per device and time), and commit."""
    conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'S1') ON CONFLICT DO NOTHING",
                 (SITE,))
    by_msg: dict[tuple[str, datetime], dict[str, float | str]] = defaultdict(dict)
    for p in points:
        by_msg[(p.device, p.time)][p.metric] = p.value
    last = max((t for _, t in by_msg), default=EPOCH)
    received_ms = int((received or last).timestamp() * 1000)
    messages = [Message(f"caretaker/v1/{SITE}/devices/{device}/telemetry",
                        json.dumps({"ts": int(at.timestamp() * 1000), "values": values}).encode(),
                        received_ms) for (device, at), values in sorted(by_msg.items())]
    for i in range(0, len(messages), 2000):
        write_batch(conn, assemble(messages[i:i + 2000]))
    conn.commit()


def steady(devices: Iterable[str], metrics: Iterable[str], start: datetime, end: datetime,
           step: timedelta) -> list[Point]:
    """A reading of each device and metric every `step` in [start, end), values that vary."""
    out = []
    metrics = list(metrics)
    for d_index, device in enumerate(devices):
        at, k = start, 0
        while at < end:
            for m_index, metric in enumerate(metrics):
                out.append(Point(device, metric, at,
                                 round(math.sin(k / 7 + d_index + m_index) * 10 + k % 13, 3)))
            at += step
            k += 1
    return out


def expected(points: Iterable[Point], width: timedelta, start: datetime | None = None,
             end: datetime | None = None) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    """(device, metric, bucket) → min, max, avg, count, last, last_text, as the API gives."""
    buckets: dict[tuple[str, str, datetime], list[Point]] = defaultdict(list)
    for p in points:
        if (start is None or p.time >= start) and (end is None or p.time < end):
            b = p.time - (p.time - EPOCH) % width
            buckets[(p.device, p.metric, b)].append(p)
    out = {}
    for key, ps in buckets.items():
        nums = [p.value for p in ps if isinstance(p.value, float | int)]
        newest = max(ps, key=lambda p: p.time)
        out[key] = {"min": min(nums) if nums else None, "max": max(nums) if nums else None,
                    "avg": sum(nums) / len(nums) if nums else None, "count": len(ps),
                    "last": newest.value if isinstance(newest.value, float | int) else None,
                    "last_text": newest.value if isinstance(newest.value, str) else None}
    return out


def close(a: dict[tuple[str, str, datetime], dict[str, Any]],
          b: dict[tuple[str, str, datetime], dict[str, Any]]) -> bool:
    """The same buckets with the same aggregates (averages to float rounding)."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        for field in ("min", "max", "count", "last", "last_text"):
            if x[field] != y[field]:
                return False
        if (x["avg"] is None) != (y["avg"] is None) or (
                x["avg"] is not None and not math.isclose(x["avg"], y["avg"], rel_tol=1e-9,
                                                          abs_tol=1e-9)):
            return False
    return True


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
