"""A new site's first look: schedules take effect when loaded, acknowledged gaps leave the open
list, and patrol-status pages through every open gap."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from rules.patrol.model import schedule_from_dict
from rules.patrol.schedule import occurrences
from tests.patrol.helpers import T0, gaps, tick, value

H = timedelta(hours=1)
HOURLY = {"id": "h", "route": "r", "guard": "g1", "kind": "every", "every": "1h"}
Headers = Callable[..., dict[str, str]]


def starts(conn: psycopg.Connection[Any]) -> list[datetime]:
    return [r["planned_start"] for r in conn.execute(
        "SELECT planned_start FROM patrol_runs WHERE schedule_id = 'h' ORDER BY 1").fetchall()]


def test_occurrences_never_start_before_the_schedule_takes_effect() -> None:
    sched = schedule_from_dict(HOURLY)
    day = datetime(2026, 11, 23, tzinfo=UTC)
    got = occurrences(sched, "UTC", day, day + 6 * H, not_before=day + 2 * H + timedelta(
        minutes=30))
    assert got == [day + 3 * H, day + 4 * H, day + 5 * H]
    at = schedule_from_dict({**HOURLY, "effective_from": "2026-11-23T04:00:00+01:00"})
    assert occurrences(at, "UTC", day, day + 6 * H) == [day + 3 * H, day + 4 * H, day + 5 * H]


def test_a_schedule_without_effective_from_starts_when_first_loaded(
        conn: psycopg.Connection[Any], load: Callable[..., None]) -> None:
    load(now=T0 - timedelta(minutes=30), schedules=[HOURLY])
    loaded = value(conn, "SELECT effective_at FROM schedules WHERE id = 'h'")
    assert loaded == T0 - timedelta(minutes=30)
    tick(conn, T0 + 3 * H)
    assert starts(conn)[0] == T0  # nothing before the site existed: no run, no gap
    assert min(g["planned_start"] for g in gaps(conn)) == T0
    load(now=T0 + 3 * H, schedules=[HOURLY])  # loading the file again does not move it
    assert value(conn, "SELECT effective_at FROM schedules WHERE id = 'h'") == loaded
    edited = {**HOURLY, "every": "2h"}
    load(now=T0 + 3 * H, schedules=[edited])  # nor does changing the schedule
    assert value(conn, "SELECT effective_at FROM schedules WHERE id = 'h'") == loaded


def test_an_earlier_effective_from_plans_the_history(
        conn: psycopg.Connection[Any], load: Callable[..., None]) -> None:
    load(now=T0, schedules=[HOURLY])
    tick(conn, T0 + H)
    assert starts(conn)[0] == T0
    week = (T0 - timedelta(days=7)).isoformat()
    load(now=T0 + H, schedules=[{**HOURLY, "effective_from": week}])  # e.g. the demo
    for k in range(4):  # planned a week's chunk per tick
        tick(conn, T0 + H + k * timedelta(seconds=1))
    got = starts(conn)
    assert got[0] == T0 - timedelta(days=7)
    assert len(got) == len(set(got)) and T0 - H in got


def test_acknowledged_gaps_leave_the_open_list_and_status_pages_them_all(
        client: TestClient, conn: psycopg.Connection[Any], load: Callable[..., None],
        api_clock: FakeClock, make_token: Headers) -> None:
    load(now=T0 - timedelta(minutes=1), schedules=[HOURLY])
    tick(conn, T0 + 7 * H)
    api_clock.set(T0 + 7 * H)
    sup = make_token("supervisor", site="t1")
    status = client.get("/api/v1/sites/t1/patrol-status?limit=2", headers=sup).json()
    total = status["open_gap_count"]
    assert total == 7 and len(status["open_gaps"]) == 2  # the 14:00 ... 20:00 runs: missed
    seen: list[int] = []
    for offset in range(0, total, 2):
        page = client.get(f"/api/v1/sites/t1/patrol-status?limit=2&offset={offset}",
                          headers=sup).json()
        assert page["limit"] == 2 and page["offset"] == offset
        seen += [g["id"] for g in page["open_gaps"]]
    assert len(set(seen)) == total  # every open gap, each once
    assert client.get("/api/v1/sites/t1/patrol-status?limit=0",
                      headers=sup).status_code == 422
    gap = seen[0]
    r = client.post(f"/api/v1/gaps/{gap}/acknowledge", json={"note": "seen"}, headers=sup)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    open_list = client.get("/api/v1/gaps?site=t1&status=open&limit=100", headers=sup).json()
    assert open_list["total"] == total - 1 and gap not in [g["id"] for g in open_list["items"]]
    acked = client.get("/api/v1/gaps?status=acknowledged", headers=sup).json()
    assert [g["id"] for g in acked["items"]] == [gap]
    status = client.get("/api/v1/sites/t1/patrol-status?limit=100", headers=sup).json()
    assert status["open_gap_count"] == total - 1
    assert gap not in [g["id"] for g in status["open_gaps"]]
    tick(conn, T0 + 7 * H + timedelta(seconds=5))  # the engine leaves it acknowledged
    assert value(conn, "SELECT status FROM inspection_gaps WHERE id = %s", (gap,)) == \
        "acknowledged"
