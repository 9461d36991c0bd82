"""Retention: drop whole chunks of the hypertables older than CARETAKER_RETENTION_DAYS."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

HYPERTABLES = ("telemetry", "device_status", "scans")


def apply_retention(conn: psycopg.Connection[Any], *, days: int, now: datetime) -> int:
    """Drop chunks whose data is all older than `days` before `now`; return how many."""
    cutoff = now - timedelta(days=days)
    dropped = 0
    for table in HYPERTABLES:
        rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                            (table, cutoff)).fetchall()
        dropped += len(rows)
    return dropped
