"""Retention: drop old chunks of the hypertables, and old scan ids and dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

HYPERTABLES = ("telemetry_points", "device_status", "scans")


def apply_retention(conn: psycopg.Connection[Any], *, days: int, now: datetime,
                    dead_letter_days: int | None = None) -> int:
    """Drop data older than `days` (dead letters: `dead_letter_days`); chunks and rows gone."""
    cutoff = now - timedelta(days=days)
    dropped = 0
    for table in HYPERTABLES:
        rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                            (table, cutoff)).fetchall()
        dropped += len(rows)
    # a scan's id is kept while its scan is: the ids of dropped scans go with them
    dropped += conn.execute(
        "DELETE FROM scan_ids i WHERE i.time < %s AND NOT EXISTS"
        " (SELECT 1 FROM scans s WHERE s.scan_id = i.scan_id AND s.time = i.time)",
        (cutoff,)).rowcount
    # by when a dead letter was last received: one still arriving is kept
    dead_cutoff = now - timedelta(days=dead_letter_days or days)
    dropped += conn.execute("DELETE FROM dead_letters WHERE last_received_at < %s",
                            (dead_cutoff,)).rowcount
    return dropped
