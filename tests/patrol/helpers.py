"""Helpers for the patrol tests: a small site, scans stored as the ingest stores them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
import pytest

from ingest.payloads import Scan
from ingest.store import store_scans
from rules.patrol import engine
from stack.app import load_site

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # the test schedules' 14:00 run
OPTIONS = engine.PatrolOptions()


def site_doc(*, schedules: list[dict[str, Any]] | None = None,
             routes: list[dict[str, Any]] | None = None, tz: str = "UTC") -> dict[str, Any]:
    """Site t1 (UTC): patrol points a, b, c; equipment point e1 on pump d1; guards g1, g2."""
    return {
        "site": {"id": "t1", "name": "Test site", "timezone": tz},
        "zones": [{"id": "z", "name": "Zone"}],
        "device_types": [{"id": "pump", "name": "Pump"}],
        "devices": [{"id": "d1", "type": "pump", "zone": "z", "name": "Pump 1"}],
        "guards": [{"id": "g1", "name": "Guard 1", "post": "night"},
                   {"id": "g2", "name": "Guard 2", "post": "gate"}],
        "checkpoints": [
            {"id": "a", "name": "A", "tag": "TAG-A", "zone": "z"},
            {"id": "b", "name": "B", "tag": "TAG-B", "zone": "z"},
            {"id": "c", "name": "C", "tag": "TAG-C", "zone": "z"},
            {"id": "e1", "name": "Pump 1 check", "tag": "QR-E1", "zone": "z",
             "kind": "equipment", "device": "d1",
             "checklist": [{"item": "pressure", "reading": "pressure", "min": 0.3, "max": 0.6},
                           {"item": "no leaks", "reading": "no_leaks", "expect": True}]},
        ],
        "routes": routes if routes is not None else [
            {"id": "r", "name": "Round", "ordered": True, "min_duration": "15m",
             "steps": [{"checkpoint": "a", "offset": "0m", "tolerance": "5m"},
                       {"checkpoint": "b", "offset": "10m", "tolerance": "5m"},
                       {"checkpoint": "c", "offset": "20m", "tolerance": "5m"}]},
            {"id": "eq", "name": "Pump check", "ordered": False,
             "steps": [{"checkpoint": "e1", "offset": "30m", "tolerance": "10m"}]},
        ],
        "schedules": schedules if schedules is not None else [
            {"id": "s", "route": "r", "guard": "g1", "kind": "daily", "at": ["14:00"],
             "effective_from": "2026-11-23"},
        ],
    }


@pytest.fixture
def load(conn: psycopg.Connection[Any]) -> Callable[..., None]:
    """load(now=..., schedules=..., routes=...) applies the test site and commits."""

    def run(*, now: datetime = T0 - timedelta(hours=1), **kw: Any) -> None:
        load_site(conn, site_doc(**kw), now=now)
        conn.commit()

    return run


def scan(conn: psycopg.Connection[Any], tag: str, when: datetime, *, guard: str = "g1",
         site: str = "t1", received: datetime | None = None,
         result: Literal["ok", "abnormal"] = "ok",
         readings: dict[str, Any] | None = None, scan_id: uuid.UUID | None = None,
         note: str | None = None) -> uuid.UUID:
    """Store one scan (and its outbox event) exactly as the ingest does; commit."""
    sid = scan_id or uuid.uuid4()
    store_scans(conn, site, guard, [Scan(sid, tag, when, result, readings or {}, note)],
                received_at=received or when)
    conn.commit()
    return sid


def tick(conn: psycopg.Connection[Any], now: datetime) -> None:
    """One pass of the engine at `now`, committed."""
    engine.clock_tick(conn, now, options=OPTIONS)
    conn.commit()


def gaps(conn: psycopg.Connection[Any], **where: Any) -> list[dict[str, Any]]:
    """The stored gaps (optionally filtered by column = value), oldest first."""
    rows = conn.execute("SELECT g.*, r.planned_start FROM inspection_gaps g"
                        " JOIN patrol_runs r ON r.id = g.run_id ORDER BY g.id").fetchall()
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def run_row(conn: psycopg.Connection[Any], start: datetime, schedule: str = "s") -> dict[str, Any]:
    row = conn.execute("SELECT * FROM patrol_runs WHERE schedule_id = %s AND planned_start = %s",
                       (schedule, start)).fetchone()
    assert row is not None, f"no run of {schedule} at {start}"
    return dict(row)


def visits(conn: psycopg.Connection[Any], run_id: int) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM patrol_visits WHERE run_id = %s ORDER BY seq",
                        (run_id,)).fetchall()


def value(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> Any:
    """The first column of the first row of a query (e.g. a count)."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return next(iter(row.values()))
