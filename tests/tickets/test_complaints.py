"""Complaints (投诉) over the API: numbering, deadlines, every transition, notifications."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from tests.tickets.front_desk import API, OTHER, SITE, NotifySpy, Tokens, complaint, make_sites
from tickets import complaints
from tickets.complaints import Complainant, format_number

URL = f"{API}/complaints"

# Each step's body, and the states it may start from (the complaint lifecycle).
STEPS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "assign": ("assign", {"team": "秩序部", "assignee": "sec-wang"},
               ("open", "assigned", "rework")),
    "answer": ("answer", {"answer": "已约谈装修方"}, ("open", "assigned", "rework")),
    "rework": ("rework", {"note": "noise again"}, ("answered", "closed")),
    "close handled": ("close", {"resolution": "handled"}, ("answered",)),
    "close invalid": ("close", {"resolution": "invalid", "reason": "not ours"},
                      ("open", "assigned", "answered", "rework")),
}
AFTER = {"assign": "assigned", "answer": "answered", "rework": "rework", "close": "closed"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _force(conn: psycopg.Connection, complaint_id: int, state: str) -> None:
    conn.execute("UPDATE complaints SET state = %s, resolution = CASE WHEN %s = 'closed'"
                 " THEN 'handled' END WHERE id = %s", (state, state, complaint_id))
    conn.commit()


def test_a_complaint_is_numbered_due_in_three_days_and_announced(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens, api_clock: FakeClock,
        notified: NotifySpy) -> None:
    make_sites(conn)
    desk = make_token("frontdesk", site=SITE)
    r = client.post(URL, json=complaint(), headers=desk)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["number"] == "TS-2026-0001" and c["state"] == "open"
    assert _at(c["opened_at"]) == api_clock()
    assert _at(c["answer_by"]) == api_clock() + timedelta(days=3)
    assert c["complainant"] == {"name": "王先生", "unit": "2-1503", "phone": "13812345678"}
    assert (c["grade"], c["category"], c["channel"]) == ("一般", "秩序管理", "phone")
    assert client.post(URL, json=complaint(), headers=desk).json()["number"] == "TS-2026-0002"
    assert notified.events("complaint") == [("opened", []), ("opened", [])]
    detail = client.get(f"{URL}/{c['id']}", headers=desk).json()
    assert [h["action"] for h in detail["history"]] == ["opened"]
    assert detail["follow_ups"] == []


def test_serious_complaint_tells_the_quality_department_at_once(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        notified: NotifySpy) -> None:
    make_sites(conn)
    r = client.post(URL, json=complaint(grade="严重"), headers=make_token("frontdesk"))
    assert r.status_code == 201
    [call] = notified.calls
    assert (call["subject"], call["event"], list(call["audience"])) == (
        "complaint", "opened", ["quality"])
    assert call["site_id"] == SITE and call["record"]["number"] == r.json()["number"]


def test_answer_within_follows_the_site_policy(conn: psycopg.Connection, client: TestClient,
                                               make_token: Tokens, api_clock: FakeClock) -> None:
    make_sites(conn, policy={"complaints": {"answer_within": "2d"}})
    c = client.post(URL, json=complaint(), headers=make_token("supervisor")).json()
    assert _at(c["answer_by"]) == api_clock() + timedelta(days=2)


def test_numbers_restart_each_year_in_the_sites_time_zone_and_per_site(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)  # rv is in Asia/Shanghai (UTC+8), other in UTC
    sup = make_token("supervisor")
    api_clock.set(datetime(2026, 12, 31, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    assert [client.post(URL, json=complaint(), headers=sup).json()["number"]
            for _ in range(2)] == ["TS-2026-0001", "TS-2026-0002"]
    api_clock.advance(hours=1)  # 00:30 on 1 January in Shanghai, still 2026 in UTC
    assert client.post(URL, json=complaint(), headers=sup).json()["number"] == "TS-2027-0001"
    assert client.post(URL, json=complaint(site=OTHER),
                       headers=sup).json()["number"] == "TS-2026-0001"
    assert client.post(URL, json=complaint(), headers=sup).json()["number"] == "TS-2027-0002"
    assert format_number(2027, 12345) == "TS-2027-12345"


def test_twenty_concurrent_creations_take_twenty_numbers_without_gaps(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens) -> None:
    make_sites(conn)
    desk = make_token("frontdesk")

    def create(i: int) -> tuple[int, str]:
        r = client.post(URL, json=complaint(description=f"complaint {i}"), headers=desk)
        return r.status_code, r.json().get("number", r.text)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(create, range(20)))
    assert {status for status, _ in answers} == {201}
    assert sorted(number for _, number in answers) == [f"TS-2026-{i:04d}" for i in range(1, 21)]
    stored = conn.execute("SELECT number FROM complaints ORDER BY number").fetchall()
    assert [r["number"] for r in stored] == [f"TS-2026-{i:04d}" for i in range(1, 21)]


def test_a_rolled_back_creation_gives_its_number_back(conn: psycopg.Connection,
                                                      database: str) -> None:
    make_sites(conn)
    now = datetime(2026, 5, 1, 8, tzinfo=UTC)

    def create(c: psycopg.Connection) -> str:
        return str(complaints.create(c, site_id=SITE, grade="轻微", category="环境管理",
                                     channel="app", description="litter", now=now,
                                     complainant=Complainant(), actor="test")["number"])

    assert create(conn) == "TS-2026-0001"
    conn.commit()
    assert create(conn) == "TS-2026-0002"
    conn.rollback()  # e.g. the request failed after numbering: the number is not burnt
    with psycopg.connect(database, row_factory=dict_row) as other:
        assert create(other) == "TS-2026-0002"
    assert create(conn) == "TS-2026-0003"
    conn.commit()


def test_every_transition_allowed_and_refused(conn: psycopg.Connection, client: TestClient,
                                              make_token: Tokens, notified: NotifySpy) -> None:
    make_sites(conn)
    sup = make_token("supervisor")
    for name, (action, body, allowed) in STEPS.items():
        for state in complaints.STATES:
            c = client.post(URL, json=complaint(), headers=sup).json()
            _force(conn, c["id"], state)
            r = client.post(f"{URL}/{c['id']}/{action}", json=body, headers=sup)
            now = client.get(f"{URL}/{c['id']}", headers=sup).json()
            if state in allowed:
                assert r.status_code == 200, (name, state, r.text)
                assert r.json()["state"] == now["state"] == AFTER[action]
                last = now["history"][-1]
                assert (last["action"], last["from_state"], last["to_state"]) == (
                    action, state, AFTER[action])
            else:
                assert r.status_code == 409, (name, state, r.text)
                assert r.json()["error"]["code"] == "conflict"
                assert now["state"] == state and len(now["history"]) == 1
    assert client.post(f"{URL}/999999/answer", json={"answer": "x"},
                       headers=sup).status_code == 404


def test_a_complaint_answered_reworked_answered_again_and_closed(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens, api_clock: FakeClock,
        notified: NotifySpy) -> None:
    make_sites(conn)
    desk, eng = make_token("frontdesk", site=SITE), make_token("engineer", site=SITE)
    c = client.post(URL, json=complaint(), headers=desk).json()
    url = f"{URL}/{c['id']}"
    r = client.post(f"{url}/assign", json={"team": "秩序部"}, headers=desk).json()
    assert (r["state"], r["team"], r["assignee"]) == ("assigned", "秩序部", None)
    api_clock.advance(hours=5)
    first = api_clock()
    r = client.post(f"{url}/answer", json={"answer": "已约谈装修方"}, headers=eng).json()
    assert r["state"] == "answered" and _at(r["answered_at"]) == first
    api_clock.advance(days=1)
    assert client.post(f"{url}/rework", json={}, headers=desk).status_code == 422  # why?
    r = client.post(f"{url}/rework", json={"note": "noise again"}, headers=desk).json()
    assert (r["state"], r["rework_count"]) == ("rework", 1)
    r = client.post(f"{url}/answer", json={"answer": "施工时间已限定"}, headers=desk).json()
    assert _at(r["answered_at"]) == first and r["answer"] == "施工时间已限定"
    r = client.post(f"{url}/close", json={"resolution": "handled"}, headers=desk).json()
    assert (r["state"], r["resolution"], _at(r["closed_at"])) == ("closed", "handled",
                                                                    api_clock())
    assert notified.events("complaint") == [
        ("opened", []), ("answered", []), ("answered", []), ("closed", [])]
    detail = client.get(url, headers=desk).json()
    assert [h["action"] for h in detail["history"]] == [
        "opened", "assign", "answer", "rework", "answer", "close"]
    # rework after closing (the complainant came back): open again, resolution cleared
    r = client.post(f"{url}/rework", json={"note": "it started again"}, headers=desk).json()
    assert (r["state"], r["resolution"], r["closed_at"], r["rework_count"]) == (
        "rework", None, None, 2)


def test_closing_as_not_valid_needs_a_reason_and_a_manager(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens) -> None:
    make_sites(conn)
    desk, sup = make_token("frontdesk"), make_token("supervisor")
    c = client.post(URL, json=complaint(), headers=desk).json()
    url = f"{URL}/{c['id']}/close"
    assert client.post(url, json={"resolution": "invalid"}, headers=sup).status_code == 422
    assert client.post(url, json={"resolution": "invalid", "reason": " "},
                       headers=sup).status_code == 422
    assert client.post(url, json={"resolution": "invalid", "reason": "outside the estate"},
                       headers=desk).status_code == 403
    assert client.post(url, json={"resolution": "maybe"}, headers=sup).status_code == 422
    r = client.post(url, json={"resolution": "invalid", "reason": "outside the estate"},
                    headers=sup).json()
    assert (r["state"], r["resolution"], r["close_reason"]) == (
        "closed", "invalid", "outside the estate")


@pytest.mark.parametrize("change", [
    {"grade": "critical"}, {"category": "设备"}, {"channel": "system"}, {"description": ""},
    {"complainant": {"phone": "not a phone"}}, {"number": "TS-2026-0099"},
])
def test_bad_complaints_are_refused_without_taking_a_number(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        change: dict[str, Any]) -> None:
    make_sites(conn)
    desk = make_token("frontdesk")
    assert client.post(URL, json=complaint(**change), headers=desk).status_code == 422
    assert client.post(URL, json=complaint(site="nosite"), headers=desk).status_code == 422
    assert client.post(URL, json=complaint(), headers=desk).json()["number"] == "TS-2026-0001"


def test_roles_and_site_scope(conn: psycopg.Connection, client: TestClient,
                              make_token: Tokens, admin: dict[str, str]) -> None:
    make_sites(conn)
    for role, status in (("frontdesk", 201), ("supervisor", 201), ("engineer", 403),
                         ("viewer", 403)):
        assert client.post(URL, json=complaint(), headers=make_token(role)).status_code == status
    assert client.post(URL, json=complaint(), headers=make_token("guard", guard="g")
                       ).status_code == 403
    assert client.post(URL, json=complaint(), headers=admin).status_code == 201
    assert client.post(URL, json=complaint()).status_code == 401
    c = client.post(URL, json=complaint(), headers=make_token("frontdesk")).json()
    eng = make_token("engineer")
    assert client.post(f"{URL}/{c['id']}/assign", json={"team": "工程部"},
                       headers=eng).status_code == 403
    assert client.post(f"{URL}/{c['id']}/answer", json={"answer": "fixed"},
                       headers=eng).status_code == 200
    scoped = make_token("frontdesk", site=OTHER)
    assert client.get(f"{URL}/{c['id']}", headers=scoped).status_code == 404
    assert client.post(f"{URL}/{c['id']}/rework", json={"note": "x"},
                       headers=scoped).status_code == 404
    assert client.get(URL, params={"site": SITE}, headers=scoped).status_code == 403
    assert client.get(URL, headers=scoped).json()["total"] == 0
    assert client.post(URL, json=complaint(), headers=scoped).status_code == 403


def test_list_filters_paging_and_the_visits_of_a_complaint(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    desk = make_token("frontdesk")
    start = api_clock()
    made = []
    for grade, category in (("轻微", "环境管理"), ("严重", "设备管理"), ("一般", "环境管理")):
        made.append(client.post(URL, json=complaint(grade=grade, category=category),
                                headers=desk).json())
        api_clock.advance(hours=1)
    client.post(f"{URL}/{made[0]['id']}/answer", json={"answer": "cleaned"}, headers=desk)
    conn.execute("UPDATE complaints SET overdue = true WHERE id = %s", (made[2]["id"],))
    conn.execute("INSERT INTO complaints (site_id, number, grade, category, channel,"
                 " description, opened_at, answer_by, created_by, updated_at) VALUES"
                 " (%s, 'TS-2026-0500', '一般', '其他', 'app', 'elsewhere', %s, %s, 't', %s)",
                 (OTHER, start, start, start))
    conn.execute("INSERT INTO follow_ups (site_id, complaint_id, at, actor, channel, outcome,"
                 " opinion, satisfaction) VALUES (%s, %s, %s, 'desk-li', 'phone', 'reached',"
                 " '满意', 5)", (SITE, made[0]["id"], api_clock()))
    conn.commit()

    def numbers(**params: Any) -> list[str]:
        page = client.get(URL, params=params, headers=desk).json()
        return [c["number"] for c in page["items"]]

    assert numbers(site=SITE) == ["TS-2026-0003", "TS-2026-0002", "TS-2026-0001"]
    assert numbers(category="环境管理", site=SITE) == ["TS-2026-0003", "TS-2026-0001"]
    assert numbers(grade="严重") == ["TS-2026-0002"]
    assert numbers(state="answered") == ["TS-2026-0001"]
    assert numbers(overdue="true") == ["TS-2026-0003"]
    assert numbers(site=SITE, since=(start + timedelta(minutes=30)).isoformat(),
                   until=(start + timedelta(minutes=90)).isoformat()) == ["TS-2026-0002"]
    page = client.get(URL, params={"limit": 2, "offset": 1}, headers=desk).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    assert client.get(URL, params={"grade": "critical"}, headers=desk).status_code == 422
    assert client.get(URL, params={"limit": 5000}, headers=desk).status_code == 422
    detail = client.get(f"{URL}/{made[0]['id']}", headers=desk).json()
    [visit] = detail["follow_ups"]
    assert (visit["outcome"], visit["satisfaction"], visit["opinion"]) == ("reached", 5, "满意")
