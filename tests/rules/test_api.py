"""The alarms, work-orders, maintenance-windows and rules endpoints, with roles and site scope."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from tests.rules.helpers import SITE, at, make_site, publish, run

Tokens = Callable[..., dict[str, str]]


def _fault(conn: psycopg.Connection) -> None:
    make_site(conn)
    conn.execute("INSERT INTO sites (id, name) VALUES ('other', 'Other site')")
    conn.commit()
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))


def test_alarms_list_filter_ack_clear_and_scope(conn: psycopg.Connection, client: TestClient,
                                                make_token: Tokens, admin: dict[str, str]
                                                ) -> None:
    _fault(conn)
    page = client.get("/api/v1/alarms", params={"state": "active", "site": SITE},
                      headers=admin).json()
    assert page["total"] == 1 and page["limit"] == 100
    alarm_id = page["items"][0]["id"]
    assert client.get("/api/v1/alarms", params={"severity": "critical"},
                      headers=admin).json()["total"] == 0
    other = make_token("viewer", site="other")
    assert client.get("/api/v1/alarms", headers=other).json()["total"] == 0
    assert client.get(f"/api/v1/alarms/{alarm_id}", headers=other).status_code == 404
    viewer = make_token("viewer")
    assert client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={},
                       headers=viewer).status_code == 403
    eng = make_token("engineer", site=SITE)
    r = client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={"note": "on my way"},
                    headers=eng)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    assert client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={},
                       headers=eng).status_code == 409
    r = client.post(f"/api/v1/alarms/{alarm_id}/clear", json={}, headers=eng)
    assert r.json()["state"] == "cleared"
    detail = client.get(f"/api/v1/alarms/{alarm_id}", headers=viewer).json()
    assert [h["action"] for h in detail["history"]] == ["raised", "acknowledged", "cleared"]
    assert client.get("/api/v1/alarms").status_code == 401


def test_work_order_lifecycle_over_http_with_roles(conn: psycopg.Connection, client: TestClient,
                                                   make_token: Tokens, api_clock: FakeClock
                                                   ) -> None:
    _fault(conn)
    eng, sup = make_token("engineer"), make_token("supervisor")
    guard, viewer = make_token("guard", guard="g-li"), make_token("viewer")
    page = client.get("/api/v1/work-orders", params={"state": "open"}, headers=viewer).json()
    assert page["total"] == 1
    wo = page["items"][0]["id"]
    url = f"/api/v1/work-orders/{wo}"
    assert client.post(f"{url}/acknowledge", json={}, headers=viewer).status_code == 403
    assert client.post(f"{url}/start", json={}, headers=eng).status_code == 409
    for step in ("acknowledge", "start", "resolve"):
        r = client.post(f"{url}/{step}", json={"note": step}, headers=eng)
        assert r.status_code == 200, r.text
    r = client.post(f"{url}/assign", json={"assignee": "eng-zhao"}, headers=sup)
    assert r.json()["assignee"] == "eng-zhao"
    assert client.post(f"{url}/close", json={}, headers=guard).status_code == 403
    assert client.post(f"{url}/close", json={}, headers=eng).status_code == 403
    # the follow-up visit is no longer a field of closing (it is a record of its own)
    followup = {"contact": "Ms Lin, B-902", "result": "pressure back", "satisfaction": 4}
    assert client.post(f"{url}/close", json={"followup": followup},
                       headers=sup).status_code == 422
    r = client.post(f"{url}/close", json={}, headers=sup)
    assert r.status_code == 200 and r.json()["state"] == "closed"
    detail = client.get(url, headers=viewer).json()
    assert [h["action"] for h in detail["history"]] == [
        "opened", "acknowledge", "start", "resolve", "assigned", "close"]
    assert detail["faults"][0]["source"] == "alarm"
    scoped = make_token("viewer", site="other")
    assert client.get(url, headers=scoped).status_code == 404
    assert client.get("/api/v1/work-orders", params={"site": SITE},
                      headers=scoped).status_code == 403


def test_maintenance_windows_and_rules_endpoints(conn: psycopg.Connection, client: TestClient,
                                                 make_token: Tokens, admin: dict[str, str]
                                                 ) -> None:
    make_site(conn)
    sup, viewer = make_token("supervisor"), make_token("viewer")
    body = {"site_id": SITE, "id": "mw-pump", "device_id": "pump-1",
            "starts_at": "2026-11-23T08:00:00+00:00", "ends_at": "2026-11-23T12:00:00+00:00",
            "reason": "impeller change"}
    assert client.post("/api/v1/maintenance-windows", json=body,
                       headers=viewer).status_code == 403
    r = client.post("/api/v1/maintenance-windows", json=body, headers=sup)
    assert r.status_code == 201 and r.json()["created_by"]
    assert client.post("/api/v1/maintenance-windows", json=body, headers=sup).status_code == 409
    bad = {**body, "id": "mw-bad", "ends_at": "2026-11-23T07:00:00+00:00"}
    assert client.post("/api/v1/maintenance-windows", json=bad, headers=sup).status_code == 422
    active = client.get("/api/v1/maintenance-windows",
                        params={"active_at": "2026-11-23T09:00:00+00:00"}, headers=viewer).json()
    assert active["total"] == 1
    r = client.patch(f"/api/v1/maintenance-windows/{SITE}/mw-pump",
                     json={"ends_at": "2026-11-23T10:00:00+00:00"}, headers=sup)
    assert r.json()["ends_at"].startswith("2026-11-23T10:00:00")
    assert client.delete(f"/api/v1/maintenance-windows/{SITE}/mw-pump",
                         headers=sup).status_code == 204

    rules = client.get("/api/v1/rules", params={"site": SITE}, headers=viewer).json()
    assert rules["total"] == 4
    new = {"site_id": SITE, "id": "pressure-low", "metric": "outlet_pressure",
           "device_type": "water_pump", "severity": "major",
           "op": "<", "threshold": 0.3, "clear": 0.35, "for": "30s"}
    assert client.post("/api/v1/rules", json=new, headers=viewer).status_code == 403
    r = client.post("/api/v1/rules", json=new, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json()["for"] == "30s"
    assert client.post("/api/v1/rules", json=new, headers=sup).status_code == 409
    no_threshold = {k: v for k, v in new.items() if k not in ("op", "threshold", "clear", "for")}
    assert client.post("/api/v1/rules", json={**no_threshold, "id": "b"},
                       headers=sup).status_code == 422
    r = client.patch(f"/api/v1/rules/{SITE}/pressure-low", json={"threshold": 0.25},
                     headers=sup)
    assert r.json()["threshold"] == 0.25 and r.json()["clear"] == 0.35
    r = client.post(f"/api/v1/rules/{SITE}/pressure-low/disable", headers=sup)
    assert r.json()["enabled"] is False
    assert client.get(f"/api/v1/rules/{SITE}/nope", headers=admin).status_code == 404


def test_maintenance_window_refusals_are_4xx(conn: psycopg.Connection, client: TestClient,
                                             make_token: Tokens, admin: dict[str, str]) -> None:
    make_site(conn)
    sup = make_token("supervisor")
    body = {"site_id": SITE, "id": "mw-1", "starts_at": "2026-11-23T08:00:00+00:00",
            "ends_at": "2026-11-23T12:00:00+00:00", "reason": "pump swap"}
    r = client.post("/api/v1/maintenance-windows", json={**body, "site_id": "nowhere"},
                    headers=admin)
    assert r.status_code == 422 and "unknown site 'nowhere'" in r.json()["error"]["message"]
    r = client.post("/api/v1/maintenance-windows", json={**body, "device_id": "pump-9"},
                    headers=sup)
    assert r.status_code == 422 and "pump-9" in r.json()["error"]["message"]
    assert client.post("/api/v1/maintenance-windows", json=body, headers=sup).status_code == 201
    url = f"/api/v1/maintenance-windows/{SITE}/mw-1"
    for nulled in ({"ends_at": None}, {"starts_at": None}, {"reason": None}):
        assert client.patch(url, json=nulled, headers=sup).status_code == 422
    assert client.patch(url, json={"ends_at": "2026-11-23T07:00:00+00:00"},
                        headers=sup).status_code == 422
    assert client.patch(f"/api/v1/maintenance-windows/{SITE}/nope", json={"reason": "x"},
                        headers=sup).status_code == 404
    # a time without an offset is the site's local time (the site file reads it the same way)
    r = client.patch(url, json={"ends_at": "2026-11-23T13:00:00"}, headers=sup)
    assert r.status_code == 200 and r.json()["ends_at"].startswith("2026-11-23T13:00:00")
    for query in ({"site": "a\x00"}, {"device": "\x00"}, {"active_at": "never"},
                  {"offset": -1}):
        assert client.get("/api/v1/maintenance-windows", params=query,
                          headers=admin).status_code == 422
    assert client.get(f"/api/v1/maintenance-windows/{SITE}/mw%00",
                      headers=admin).status_code == 422
