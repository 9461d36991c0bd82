"""The front desk (客服) takes in tickets and complaints but touches no equipment."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.rules.helpers import SITE as PLANT
from tests.rules.helpers import T0, at, make_site, publish, run
from tests.tickets.front_desk import API, SITE, Tokens, make_sites, ticket
from tickets import complaints
from tickets.work_orders import ROLES, open_work_order
from tickets.work_orders import may as may_on_ticket

WO = f"{API}/work-orders"


def test_the_role_tables() -> None:
    for action in ROLES:
        assert may_on_ticket("admin", action, "alarm")
        assert not may_on_ticket("viewer", action, "manual")
        assert not may_on_ticket("guard", action, "manual")
    for source in ("alarm", "inspection", "patrol"):
        assert not any(may_on_ticket("frontdesk", a, source) for a in ROLES if a != "create")
    assert {a for a in ROLES if may_on_ticket("frontdesk", a, "manual")} == {
        "create", "assign", "close", "cancel", "rework"}
    assert may_on_ticket("frontdesk", "assign", "complaint")
    assert not may_on_ticket("engineer", "close", "manual")  # closing is not the repairer's
    assert complaints.may("frontdesk", "close") and not complaints.may("frontdesk",
                                                                        "close_invalid")
    assert not complaints.may("engineer", "create") and complaints.may("engineer", "answer")


def test_front_desk_is_refused_every_equipment_action(conn: psycopg.Connection,
                                                      client: TestClient,
                                                      make_token: Tokens) -> None:
    make_site(conn)  # the plant: pumps with vibration rules; a fault raises an alarm + ticket
    publish(conn, "pump-1", at(0), vibration=9)
    run(conn, at(1))
    desk = make_token("frontdesk")
    [alarm] = client.get(f"{API}/alarms", headers=desk).json()["items"]  # may read
    [fault] = client.get(WO, headers=desk).json()["items"]
    assert fault["source"] == "alarm"
    refused = [
        ("post", f"{API}/alarms/{alarm['id']}/acknowledge", {}),
        ("post", f"{API}/alarms/{alarm['id']}/clear", {}),
        ("post", f"{API}/devices", {"site_id": PLANT, "id": "pump-9", "name": "Pump 9"}),
        ("patch", f"{API}/devices/{PLANT}/pump-1", {"name": "renamed"}),
        ("post", f"{API}/rules", {"site_id": PLANT, "id": "r", "metric": "x", "op": ">",
                                  "threshold": 1, "severity": "minor"}),
        ("post", f"{API}/rules/{PLANT}/vib-major/disable", {}),
        ("post", f"{API}/maintenance-windows", {
            "site_id": PLANT, "id": "mw", "device_id": "pump-1", "reason": "x",
            "starts_at": "2026-11-23T08:00:00Z", "ends_at": "2026-11-23T09:00:00Z"}),
        ("post", f"{API}/zones", {"site_id": PLANT, "id": "z", "name": "Z"}),
        ("post", f"{API}/checkpoints", {"site_id": PLANT, "id": "c", "name": "C", "tag": "T"}),
        ("post", f"{API}/scans", {"scans": []}),
    ] + [("post", f"{WO}/{fault['id']}/{step}", {"note": "n"})
         for step in ("acknowledge", "start", "resolve", "reopen", "close", "cancel")] + [
        ("post", f"{WO}/{fault['id']}/assign", {"assignee": "eng-zhao"})]
    for method, url, body in refused:
        r = client.request(method.upper(), url, json=body, headers=desk)
        assert r.status_code == 403, (url, r.status_code, r.text)
    assert client.get(f"{WO}/{fault['id']}", headers=desk).json()["state"] == "open"
    assert client.get(f"{API}/alarms/{alarm['id']}",
                      headers=desk).json()["state"] == alarm["state"]


@pytest.mark.parametrize("source", ["inspection", "patrol"])
def test_front_desk_does_not_move_findings_along(conn: psycopg.Connection, client: TestClient,
                                                 make_token: Tokens, source: str) -> None:
    make_sites(conn)
    wo_id = open_work_order(conn, site_id=SITE, device_id=None, severity="major",
                            title="finding", description="天台门未锁", source=source,
                            source_ref=f"{source}:1", now=T0, category="整改")
    conn.commit()
    desk, sup = make_token("frontdesk"), make_token("supervisor")
    for step, body in (("assign", {"assignee": "x"}), ("cancel", {"note": "n"}),
                       ("close", {"note": "n"})):
        r = client.post(f"{WO}/{wo_id}/{step}", json=body, headers=desk)
        assert r.status_code == 403 and "may not" in r.json()["error"]["message"]
    assert client.post(f"{WO}/{wo_id}/assign", json={"assignee": "x"},
                       headers=sup).status_code == 200


def test_front_desk_dispatches_closes_and_cancels_what_it_took_in(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens) -> None:
    make_sites(conn)
    desk, eng = make_token("frontdesk"), make_token("engineer")
    first = client.post(WO, json=ticket(), headers=desk).json()
    url = f"{WO}/{first['id']}"
    assert client.post(f"{url}/acknowledge", json={}, headers=desk).status_code == 403
    assert client.post(f"{url}/assign", json={"assignee": "eng-zhao"},
                       headers=desk).status_code == 200
    assert client.post(f"{url}/close", json={}, headers=desk).status_code == 422  # no reason
    assert client.post(f"{url}/close", json={}, headers=eng).status_code == 403
    second = client.post(WO, json=ticket(), headers=desk).json()
    r = client.post(f"{WO}/{second['id']}/cancel", json={"note": "resident reported twice"},
                    headers=desk)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    complaint_wo = open_work_order(conn, site_id=SITE, device_id=None, severity="minor",
                                   title="from a complaint", description="d", source="complaint",
                                   source_ref="complaint:1", now=T0, category="其他",
                                   channel="phone")
    conn.commit()
    assert client.post(f"{WO}/{complaint_wo}/assign", json={"assignee": "x"},
                       headers=desk).status_code == 200
