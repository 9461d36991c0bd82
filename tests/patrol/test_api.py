"""Patrol over HTTP: routes, schedules, scans, runs, gaps, patrol status, and who may do what."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from ingest.payloads import datetime_to_ms
from tests.patrol.helpers import T0, gaps, tick, value

M = timedelta(minutes=1)
Headers = Callable[..., dict[str, str]]


def scan_body(tag: str, when_offset: timedelta, **extra: object) -> dict[str, object]:
    return {"scan_id": str(uuid.uuid4()), "tag": tag,
            "ts": datetime_to_ms(T0 + when_offset), **extra}


def other_site(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO sites (id, name) VALUES ('t9', 'Another site')")
    conn.commit()


def test_route_crud_and_validation(client: TestClient, conn: psycopg.Connection[Any],
                                   load: Callable[..., None], admin: dict[str, str],
                                   make_token: Headers) -> None:
    load()
    other_site(conn)
    sup = make_token("supervisor", site="t1")
    body = {"site_id": "t1", "id": "r2", "name": "Gate round", "ordered": False,
            "steps": [{"checkpoint": "a", "offset": "10m"}, {"checkpoint": "c", "offset": 600}]}
    r = client.post("/api/v1/routes", json=body, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json()["steps"] == [{"checkpoint": "a", "offset": "10m", "tolerance": "5m"},
                                 {"checkpoint": "c", "offset": "10m", "tolerance": "5m"}]
    assert client.post("/api/v1/routes", json=body, headers=sup).status_code == 409
    bad = {**body, "id": "r3", "steps": [{"checkpoint": "nowhere"}]}
    r = client.post("/api/v1/routes", json=bad, headers=sup)
    assert r.status_code == 422 and "nowhere" in r.json()["error"]["message"]
    r = client.patch("/api/v1/routes/t1/r2", json={"min_duration": "5m"}, headers=sup)
    assert r.status_code == 200 and r.json()["min_duration"] == "5m"
    listed = client.get("/api/v1/routes?site=t1", headers=make_token("viewer")).json()
    assert listed["total"] == 3 and [i["id"] for i in listed["items"]] == ["eq", "r", "r2"]
    # a route a schedule uses cannot go; an unused one can
    assert client.delete("/api/v1/routes/t1/r", headers=sup).status_code == 409
    assert client.delete("/api/v1/routes/t1/r2", headers=sup).status_code == 204
    assert client.get("/api/v1/routes/t1/r2", headers=admin).status_code == 404
    # roles and site scope
    assert client.post("/api/v1/routes", json=body,
                       headers=make_token("guard", site="t1")).status_code == 403
    other = make_token("supervisor", site="t9")
    assert client.post("/api/v1/routes", json=body, headers=other).status_code == 403
    assert client.get("/api/v1/routes/t1/r", headers=other).status_code == 404
    assert client.get("/api/v1/routes?site=t1", headers=other).status_code == 403


def test_schedule_crud_plans_runs(client: TestClient, conn: psycopg.Connection[Any],
                                  load: Callable[..., None], api_clock: FakeClock,
                                  make_token: Headers) -> None:
    load()
    api_clock.set(T0 - 60 * M)
    sup = make_token("supervisor", site="t1")
    body = {"site_id": "t1", "id": "night", "route": "r", "post": "night", "kind": "every",
            "every": "2h", "window": {"start": "20:00", "end": "06:00"},
            "effective_from": "2026-11-23"}
    r = client.post("/api/v1/schedules", json=body, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json()["next_run"] == "2026-11-23T20:00:00Z"
    tick(conn, T0 - 60 * M)
    starts = [r["planned_start"].hour for r in conn.execute(
        "SELECT planned_start FROM patrol_runs WHERE schedule_id = 'night'"
        " ORDER BY planned_start").fetchall()]
    assert starts == [20, 22, 0, 2, 4]
    r = client.patch("/api/v1/schedules/t1/night", json={"every": "3h"}, headers=sup)
    assert r.status_code == 200 and r.json()["every"] == "3h"
    tick(conn, T0 - 59 * M)
    starts = [r["planned_start"].hour for r in conn.execute(
        "SELECT planned_start FROM patrol_runs WHERE schedule_id = 'night'"
        " ORDER BY planned_start").fetchall()]
    assert starts == [20, 23, 2, 5]
    bad = client.post("/api/v1/schedules", json={**body, "id": "x", "route": "nope"},
                      headers=sup)
    assert bad.status_code == 422
    assert client.get("/api/v1/schedules?site=t1",
                      headers=make_token("viewer", site="t1")).json()["total"] == 2
    assert client.delete("/api/v1/schedules/t1/night", headers=sup).status_code == 204
    assert value(conn, "SELECT count(*) AS n FROM patrol_runs WHERE schedule_id = 'night'"
                        ) == 0


def test_post_scans_is_idempotent_and_feeds_the_engine(client: TestClient,
                                                       conn: psycopg.Connection[Any],
                                                       load: Callable[..., None],
                                                       api_clock: FakeClock,
                                                       make_token: Headers) -> None:
    load()
    tick(conn, T0 - M)
    api_clock.set(T0 + 11 * M)
    g1 = make_token("guard", site="t1", guard="g1")
    batch = [scan_body("TAG-A", timedelta(0)), scan_body("TAG-B", 10 * M)]
    r = client.post("/api/v1/scans", json=batch, headers=g1)
    assert r.status_code == 202, r.text
    assert (r.json()["stored"], r.json()["duplicates"], r.json()["guard_id"]) == (2, 0, "g1")
    again = client.post("/api/v1/scans?site=t1&guard=g1", json=batch, headers=g1).json()
    assert (again["stored"], again["duplicates"]) == (0, 2)
    single = client.post("/api/v1/scans?site=t1", json=scan_body("TAG-C", 20 * M), headers=g1)
    assert single.json()["stored"] == 1
    tick(conn, T0 + 21 * M)
    run = client.get("/api/v1/runs?site=t1&day=2026-11-23", headers=g1).json()["items"][0]
    assert (run["status"], run["visits_done"]) == ("complete", 3)
    detail = client.get(f"/api/v1/runs/{run['id']}", headers=g1).json()
    assert [v["status"] for v in detail["visits"]] == ["on_time"] * 3
    scans = client.get("/api/v1/scans?site=t1&disposition=matched", headers=g1).json()
    assert (scans["total"], {s["tag"] for s in scans["items"]}) == (3, {"TAG-A", "TAG-B", "TAG-C"})
    assert all(s["run_id"] == run["id"] for s in scans["items"])
    assert client.get("/api/v1/scans?disposition=repeat", headers=g1).json()["total"] == 0
    # who may post
    assert client.post("/api/v1/scans?site=t1&guard=g2", json=batch,
                       headers=g1).status_code == 403
    assert client.post("/api/v1/scans?site=t1&guard=g1", json=batch,
                       headers=make_token("viewer")).status_code == 403
    assert client.post("/api/v1/scans?site=t2&guard=g1", json=batch,
                       headers=g1).status_code == 403
    r = client.post("/api/v1/scans?site=t1&guard=g1", json={"tag": "TAG-A"}, headers=g1)
    assert r.status_code == 422


def test_runs_gaps_and_status_respect_roles(client: TestClient, conn: psycopg.Connection[Any],
                                            load: Callable[..., None], api_clock: FakeClock,
                                            make_token: Headers, admin: dict[str, str]
                                            ) -> None:
    other_site(conn)
    load(schedules=[
        {"id": "s", "route": "r", "guard": "g1", "kind": "daily", "at": ["14:00"],
         "effective_from": "2026-11-23"},
        {"id": "s2", "route": "r", "guard": "g2", "kind": "daily", "at": ["14:00", "18:00"],
         "effective_from": "2026-11-23"}])
    tick(conn, T0 - M)
    api_clock.set(T0 + 16 * M)
    client.post("/api/v1/scans?site=t1&guard=g1",
                json=[scan_body("TAG-A", timedelta(0)), scan_body("NFC-STRAY", M)],
                headers=admin)
    tick(conn, T0 + 16 * M)
    g1 = make_token("guard", site="t1", guard="g1")
    sup = make_token("supervisor", site="t1")
    mine = client.get("/api/v1/runs", headers=g1).json()
    assert {r["guard_id"] for r in mine["items"]} == {"g1"} and mine["total"] == 1
    assert client.get("/api/v1/runs?site=t1", headers=sup).json()["total"] == 3
    other_run = client.get("/api/v1/runs?guard=g2", headers=sup).json()["items"][0]["id"]
    assert client.get(f"/api/v1/runs/{other_run}", headers=g1).status_code == 404
    assert client.get("/api/v1/runs", headers=make_token("guard")).status_code == 403

    kinds = sorted(g["kind"] for g in client.get("/api/v1/gaps?site=t1&status=open",
                                                 headers=sup).json()["items"])
    assert kinds == ["missed_checkpoint", "missed_run"]   # g1 missed b; g2 never started
    mine = client.get("/api/v1/gaps", headers=g1).json()["items"]
    assert [(g["kind"], g["checkpoint_id"]) for g in mine] == [("missed_checkpoint", "b")]
    gap_id = mine[0]["id"]
    assert client.post(f"/api/v1/gaps/{gap_id}/acknowledge", json={"note": "x"},
                       headers=g1).status_code == 403
    r = client.post(f"/api/v1/gaps/{gap_id}/acknowledge",
                    json={"note": "guard called in, fence gate blocked"}, headers=sup)
    assert r.status_code == 200, r.text
    assert r.json()["note"] == "guard called in, fence gate blocked"
    assert r.json()["acknowledged_at"] == "2026-11-23T14:16:00Z"
    assert r.json()["status"] == "acknowledged"  # seen: out of the open list
    assert client.post(f"/api/v1/gaps/{gap_id}/acknowledge", json={},
                       headers=sup).status_code == 409
    assert client.get("/api/v1/gaps?acknowledged=false",
                      headers=sup).json()["total"] == 1
    assert client.post(f"/api/v1/gaps/{gap_id}/acknowledge", json={},
                       headers=make_token("supervisor", site="t9")).status_code == 404

    status = client.get("/api/v1/sites/t1/patrol-status", headers=sup).json()
    assert sorted(r["guard_id"] for r in status["in_progress"]) == ["g1", "g2"]
    assert [(r["schedule_id"], r["planned_start"]) for r in status["next_due"]] == [
        ("s2", "2026-11-23T18:00:00Z"), ("s", "2026-11-24T14:00:00Z")]
    assert status["open_gap_count"] == 1   # the acknowledged one has left the open list
    assert [g["kind"] for g in status["open_gaps"]] == ["missed_run"]
    assert [u["tag"] for u in status["unknown_tags"]] == ["NFC-STRAY"]
    unknown = client.get("/api/v1/scans?site=t1&disposition=unknown_tag", headers=sup).json()
    assert [s["tag"] for s in unknown["items"]] == ["NFC-STRAY"]
    own = client.get("/api/v1/sites/t1/patrol-status", headers=g1).json()
    assert own["open_gap_count"] == 0 and own["open_gaps"] == []
    assert client.get("/api/v1/sites/t1/patrol-status",
                      headers=make_token("viewer", site="t9")).status_code == 404
    assert len(gaps(conn)) == 2
