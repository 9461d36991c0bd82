"""Manual tickets (报事报修) over the API: deadlines per urgency, places checked, notified."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from tests.tickets.front_desk import (
    API,
    OTHER,
    PHONE,
    SITE,
    NotifySpy,
    Tokens,
    make_sites,
    ticket,
)
from tickets.policy import DEFAULT_URGENCY_DEADLINES, URGENCY_SEVERITY, parse_policy

URL = f"{API}/work-orders"


def test_policy_keys_for_urgencies_and_complaints() -> None:
    policy = parse_policy({"urgencies": {"急修": {"respond": "15m"}},
                           "complaints": {"answer_within": "2d"}})
    assert policy.urgencies["急修"] == (15 * 60, 24 * 3600)  # resolve keeps its default
    assert policy.urgencies["零修"] == DEFAULT_URGENCY_DEADLINES["零修"]
    assert policy.answer_within == 2 * 86400
    assert parse_policy(None).answer_within == 3 * 86400
    assert URGENCY_SEVERITY == {"急修": "major", "零修": "minor"}
    with pytest.raises(ValueError, match="urgencies"):
        parse_policy({"urgencies": {"特急": {"respond": "5m"}}})


@pytest.mark.parametrize(("urgency", "respond", "resolve", "severity", "priority"), [
    ("急修", timedelta(minutes=30), timedelta(hours=24), "major", 2),
    ("零修", timedelta(hours=24), timedelta(hours=72), "minor", 3),
])
def test_manual_ticket_end_to_end_with_deadlines_per_urgency(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens, api_clock: FakeClock,
        notified: NotifySpy, urgency: str, respond: timedelta, resolve: timedelta,
        severity: str, priority: int) -> None:
    make_sites(conn)
    desk, eng = make_token("frontdesk", site=SITE), make_token("engineer", site=SITE)
    opened = api_clock()
    r = client.post(URL, json=ticket(urgency=urgency, checkpoint="cp-roof"), headers=desk)
    assert r.status_code == 201, r.text
    wo = r.json()
    assert (wo["source"], wo["category"], wo["urgency"], wo["channel"]) == (
        "manual", "公区维修", urgency, "phone")
    assert (wo["severity"], wo["priority"], wo["state"]) == (severity, priority, "open")
    assert wo["reporter"] == {"name": "陈女士", "unit": "3-1201", "phone": PHONE}
    assert (wo["checkpoint_id"], wo["zone_id"]) == ("cp-roof", "roof")  # zone of the checkpoint
    assert wo["title"] == "公区维修: B3 车库入口积水"
    assert (_at(wo["respond_by"]), _at(wo["resolve_by"])) == (opened + respond, opened + resolve)
    assert notified.events("work_order") == [("opened", [])]
    assert notified.calls[0]["record"]["id"] == wo["id"]

    # dispatched by the front desk, repaired by the engineer, closed by the front desk
    url = f"{URL}/{wo['id']}"
    assert client.post(f"{url}/assign", json={"assignee": "eng-zhao"},
                       headers=desk).json()["assignee"] == "eng-zhao"
    api_clock.advance(minutes=10)
    for step in ("acknowledge", "start", "resolve"):
        assert client.post(f"{url}/{step}", json={}, headers=eng).status_code == 200
    closed = client.post(f"{url}/close", json={}, headers=desk)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert notified.events("work_order") == [("opened", []), ("closed", [])]
    detail = client.get(url, headers=eng).json()
    assert [h["action"] for h in detail["history"]] == [
        "opened", "assigned", "acknowledge", "start", "resolve", "close"]
    assert _at(detail["acknowledged_at"]) < _at(detail["respond_by"])  # response in time
    found = client.get(URL, params={"source": "manual", "urgency": urgency,
                                    "category": "公区维修", "channel": "phone"},
                       headers=eng).json()
    assert [w["id"] for w in found["items"]] == [wo["id"]]
    assert client.get(URL, params={"category": "整改"}, headers=eng).json()["total"] == 0


def test_urgency_deadlines_follow_the_site_policy(conn: psycopg.Connection, client: TestClient,
                                                  make_token: Tokens, api_clock: FakeClock
                                                  ) -> None:
    make_sites(conn, policy={"urgencies": {"急修": {"respond": "15m", "resolve": "4h"}}})
    sup = make_token("supervisor")
    wo = client.post(URL, json=ticket(), headers=sup).json()
    assert _at(wo["respond_by"]) == api_clock() + timedelta(minutes=15)
    assert _at(wo["resolve_by"]) == api_clock() + timedelta(hours=4)


def test_places_must_be_the_sites_own(conn: psycopg.Connection, client: TestClient,
                                      make_token: Tokens) -> None:
    make_sites(conn)
    eng = make_token("engineer")
    for place in ({"zone": "z9"}, {"checkpoint": "cp-z9"}, {"device": "p-9"},
                  {"zone": "nowhere"}, {"device": "p-404"}):
        r = client.post(URL, json=ticket(**place), headers=eng)
        assert r.status_code == 422, (place, r.text)
    r = client.post(URL, json=ticket(device="p-1", category="设备"), headers=eng)
    assert r.status_code == 201 and (r.json()["device_id"], r.json()["zone_id"]) == ("p-1", "b3")
    r = client.post(URL, json=ticket(zone="roof", device="p-1"), headers=eng)
    assert r.json()["zone_id"] == "roof"  # a zone given is kept
    assert client.post(URL, json=ticket(site="nosite"), headers=eng).status_code == 422
    assert client.post(URL, json=ticket(site=OTHER, zone="z9"), headers=eng).status_code == 201


@pytest.mark.parametrize("change", [
    {"category": "水电"}, {"urgency": "特急"}, {"channel": "system"}, {"channel": "fax"},
    {"description": ""}, {"reporter": {"phone": "call me"}}, {"reporter": {"email": "x@y"}},
    {"category": "居家维修", "reporter": {"name": "陈女士", "phone": PHONE}},  # no unit
    {"severity": "critical"}, {"description": "a\x00b"},
])
def test_bad_manual_tickets_are_refused(conn: psycopg.Connection, client: TestClient,
                                        make_token: Tokens, change: dict[str, object]) -> None:
    make_sites(conn)
    r = client.post(URL, json=ticket(**change), headers=make_token("frontdesk"))
    assert r.status_code == 422, r.text
    assert conn.execute("SELECT count(*) AS n FROM work_orders").fetchone()["n"] == 0


def test_who_may_open_a_manual_ticket(conn: psycopg.Connection, client: TestClient,
                                      make_token: Tokens, admin: dict[str, str]) -> None:
    make_sites(conn)
    for role in ("supervisor", "engineer", "frontdesk"):
        assert client.post(URL, json=ticket(), headers=make_token(role)).status_code == 201
    assert client.post(URL, json=ticket(), headers=admin).status_code == 201
    assert client.post(URL, json=ticket(), headers=make_token("viewer")).status_code == 403
    assert client.post(URL, json=ticket(),
                       headers=make_token("guard", guard="g-1")).status_code == 403
    assert client.post(URL, json=ticket()).status_code == 401
    scoped = make_token("frontdesk", site=OTHER)
    assert client.post(URL, json=ticket(), headers=scoped).status_code == 403
    # a paid in-home repair (居家维修) with the unit to go to
    r = client.post(URL, json=ticket(category="居家维修", urgency="零修", channel="wechat"),
                    headers=make_token("frontdesk", site=SITE))
    assert r.status_code == 201 and r.json()["category"] == "居家维修"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
