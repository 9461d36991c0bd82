"""GET /api/v1/kpis: the same numbers as `compute`, `previous` right, scoped to the caller."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from reports import kpis
from tests.reports.test_kpis_records import SITE, make_site, utc, work_order

Conn = psycopg.Connection[Any]
Token = Callable[..., dict[str, str]]
WEEK = {"from": "2026-11-16", "to": "2026-11-22"}  # Monday..Sunday, both included


def records(conn: Conn) -> None:
    make_site(conn, devices={"p1": "pump"})
    make_site(conn, "other", "Asia/Shanghai")
    due = utc(2026, 11, 18, 10)
    work_order(conn, opened=due - timedelta(hours=1), resolve_by=due, state="resolved",
               resolved_at=due, acknowledged_at=due - timedelta(minutes=50))
    work_order(conn, opened=due - timedelta(days=7), resolve_by=due - timedelta(days=7),
               state="resolved", resolved_at=due - timedelta(days=6))   # last week: late
    work_order(conn, opened=due, resolve_by=utc(2026, 11, 22, 22, 59), device="p1",
               source="alarm", category="设备")   # due on Sunday 23:59 Berlin: still open
    conn.commit()


def test_answer_equals_compute_and_previous_is_the_week_before(
        conn: Conn, client: TestClient, make_token: Token, api_clock: FakeClock) -> None:
    records(conn)
    api_clock.set(utc(2026, 11, 25, 12))
    r = client.get("/api/v1/kpis", params={"site": SITE, **WEEK},
                   headers=make_token("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["site"], body["from"], body["to"]) == (SITE, "2026-11-16", "2026-11-22")
    assert list(body["kpis"]) == list(kpis.NAMES)
    now = api_clock()
    mine = kpis.compute(conn, SITE, date(2026, 11, 16), date(2026, 11, 23), now=now)
    before = kpis.compute(conn, SITE, date(2026, 11, 9), date(2026, 11, 16), now=now)
    for name in kpis.NAMES:
        got = body["kpis"][name]
        assert got["value"] == mine[name].value, name
        assert got["numerator"] == mine[name].numerator, name
        assert got["denominator"] == mine[name].denominator, name
        assert got["target"] == mine[name].target, name
        assert got["previous"] == before[name].value, name
    rt = body["kpis"]["repair_timeliness"]
    assert (rt["value"], rt["numerator"], rt["denominator"], rt["target"], rt["previous"]) == (
        0.5, 1, 2, 0.99, 0.0)
    assert body["kpis"]["satisfaction"]["value"] is None
    assert body["kpis"]["mtta_seconds"]["value"] == 600
    assert body["kpis"]["equipment_intact"]["value"] == 0


def test_read_in_the_week_counts_only_what_is_due(conn: Conn, client: TestClient,
                                                 make_token: Token,
                                                 api_clock: FakeClock) -> None:
    records(conn)
    api_clock.set(utc(2026, 11, 20, 12))     # Friday: Sunday's deadline is not due yet
    body = client.get("/api/v1/kpis", params={"site": SITE, **WEEK},
                      headers=make_token("guard", site=SITE)).json()
    assert body["kpis"]["repair_timeliness"]["value"] == 1.0


def test_scoping(conn: Conn, client: TestClient, make_token: Token) -> None:
    records(conn)
    scoped = make_token("engineer", site=SITE)
    assert client.get("/api/v1/kpis", params={"site": "other", **WEEK},
                      headers=scoped).status_code == 403
    own = client.get("/api/v1/kpis", params=WEEK, headers=scoped).json()
    assert own["site"] == SITE and "kpis" in own          # a scoped token: its site's answer
    every = client.get("/api/v1/kpis", params=WEEK, headers=make_token("supervisor")).json()
    assert every["total"] == 2 and every["from"] == "2026-11-16"
    assert [s["site"] for s in every["sites"]] == [SITE, "other"]
    assert every["sites"][0]["kpis"]["repair_timeliness"]["numerator"] == 1
    assert client.get("/api/v1/kpis", params=WEEK).status_code == 401


def test_bad_requests(conn: Conn, client: TestClient, make_token: Token) -> None:
    records(conn)
    h = make_token("viewer")
    for params in ({"site": SITE, "from": "2026-11-22", "to": "2026-11-16"},
                   {"site": SITE, "from": "2024-01-01", "to": "2026-01-01"},
                   {"site": SITE, "from": "0001-01-01", "to": "0001-01-02"},
                   {"site": SITE, "from": "1763900000", "to": "2026-11-22"},
                   {"site": SITE, "to": "2026-11-22"}):
        r = client.get("/api/v1/kpis", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
    assert client.get("/api/v1/kpis", params={"site": "nowhere", **WEEK},
                      headers=h).status_code == 404
