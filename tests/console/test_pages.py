"""The console's pages through the real app: Plant, Device, Alarms and the live stamp, with
the site scoping and the CSRF token that alarm actions need."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from caretaker.users import create_user
from tests.api.test_logins import PASSWORD, login
from tests.console.seed import SITE, add_alarm, seed


@pytest.fixture
def estate(database: str, api_clock: FakeClock) -> str:
    with psycopg.connect(database, row_factory=dict_row) as conn:
        seed(conn, api_clock())
        conn.execute("INSERT INTO sites (id, name) VALUES ('elsewhere', 'Elsewhere')")
        create_user(conn, "eve", PASSWORD, role="engineer", site_id=SITE)
        create_user(conn, "vic", PASSWORD, role="viewer", site_id=SITE)
        create_user(conn, "boss", PASSWORD, role="supervisor")
        create_user(conn, "li", PASSWORD, role="guard", site_id=SITE, guard_id="g-li")
        create_user(conn, "zhang", PASSWORD, role="guard", site_id=SITE, guard_id="g-zhang")
    return database


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_plant_page_lists_devices_alarmed_first_with_readings(
        client: TestClient, estate: str) -> None:
    assert login(client, "eve", PASSWORD, lang="en").status_code == 303
    page = client.get("/", params={"lang": "en"})
    assert page.status_code == 200, page.text
    html = page.text
    assert "Content-Security-Policy" in page.headers
    rows = re.findall(r'data-device="([^"]+)"', html)
    assert rows[0] == "pump-1" and len(rows) == 21
    assert "Pump vibration high 8.0 mm/s" in html
    pump = html[html.index('data-device="pump-1"'):html.index('data-device="' + rows[1])]
    assert "<polyline points=" in pump and "m3/h" in pump
    # Times on the site's clock (Asia/Shanghai, UTC+8): raised 07:35 UTC is 15:35 there.
    assert "3:35:00\u202fPM" in html or "15:35" in html


def test_chinese_by_default_from_the_site(client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/").text
    assert '<html lang="zh-CN">' in html
    assert "设备" in html and "告警" in html


def test_a_site_scoped_user_sees_only_their_site(client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    assert client.get("/", params={"site": "elsewhere"}).status_code == 404
    assert client.get("/alarms", params={"site": "elsewhere"}).status_code == 404
    client.cookies.clear()
    login(client, "boss", PASSWORD)
    everywhere = client.get("/", params={"site": "elsewhere", "lang": "en"})
    assert everywhere.status_code == 200 and "No devices yet." in everywhere.text
    assert 'value="riverside"' in everywhere.text  # the site choice lists both


def test_the_device_page_draws_readings_thresholds_and_alarms(
        client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    page = client.get("/devices/pump-1", params={"lang": "en", "range": "6h"})
    assert page.status_code == 200, page.text
    data = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>',
                     page.text, re.S)
    assert data
    spec = json.loads(data.group(1))
    charts = {c["metric"]: c for c in spec["charts"]}
    vibration = charts["vibration"]
    assert len(vibration["points"]) > 50
    assert {(t["severity"], t["value"]) for t in vibration["thresholds"]} == {
        ("warning", 4.5), ("major", 7.1), ("critical", 11.2)}
    assert [a["severity"] for a in vibration["alarms"]] == ["major"]
    assert spec["tz"] == "Asia/Shanghai" and spec["end"] - spec["start"] == 6 * 3600
    assert "Check pump 1 bearings" in page.text
    assert client.get("/devices/nope").status_code == 404


def test_alarms_acknowledged_and_cleared_with_the_pages_csrf_token(
        client: TestClient, estate: str, api_clock: FakeClock) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/alarms", params={"lang": "en"}).text
    alarm = re.search(r'data-post="/api/v1/alarms/(\d+)/acknowledge"', html)
    assert alarm and "Tank level low" in html  # the cleared one, under recent
    url = f"/api/v1/alarms/{alarm.group(1)}/acknowledge"
    refused = client.post(url, json={})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    done = client.post(url, json={}, headers={"X-CSRF-Token": _csrf(html)})
    assert done.status_code == 200 and done.json()["state"] == "acknowledged"
    html = client.get("/alarms", params={"lang": "en"}).text
    assert 'data-alarm-action="acknowledge"' not in html
    cleared = client.post(f"/api/v1/alarms/{alarm.group(1)}/clear", json={},
                          headers={"X-CSRF-Token": _csrf(html)})
    assert cleared.status_code == 200
    assert "No active alarms." in client.get("/alarms", params={"lang": "en"}).text


def test_a_viewer_gets_no_alarm_buttons(client: TestClient, estate: str) -> None:
    client.cookies.clear()
    login(client, "vic", PASSWORD)
    assert "data-step" not in client.get("/work-orders").text
    html = client.get("/alarms").text
    assert "Pump vibration" in html and "data-alarm-action" not in html


def test_the_live_stamp_changes_with_a_new_alarm(
        client: TestClient, estate: str, api_clock: FakeClock) -> None:
    assert client.get("/console/live.json").status_code == 401
    login(client, "eve", PASSWORD)
    before = client.get("/console/live.json").json()["stamp"]
    assert client.get("/console/live.json").json()["stamp"] == before
    with psycopg.connect(estate, row_factory=dict_row) as conn:
        add_alarm(conn, "pump-2", "pump-bearing-temp", "major", "Bearing hot",
                  raised=api_clock() - timedelta(seconds=5))
    assert client.get("/console/live.json").json()["stamp"] != before


def test_pages_need_a_login(client: TestClient, estate: str) -> None:
    page = client.get("/alarms", params={"site": SITE}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Falarms%3Fsite%3Driverside"


def test_the_language_switch_is_kept_for_the_user_and_needs_the_token(
        client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/").text
    assert '<html lang="zh-CN">' in html
    refused = client.post("/console/language", data={"lang": "en", "next": "/"},
                          follow_redirects=False)
    assert refused.status_code == 403
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    done = client.post("/console/language", data={"lang": "en", "next": "//evil.example/",
                                                  "csrf_token": token.group(1)},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert '<html lang="en">' in client.get("/alarms").text


def test_the_board_offers_each_role_only_its_steps(client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/work-orders", params={"lang": "en"}).text
    card = html[html.index('data-work-order="1"'):]
    card = card[:card.index("</article>")]
    steps = set(re.findall(r'data-step="(\w+)"', card))
    assert steps == {"acknowledge", "assign"}  # an engineer neither closes nor cancels
    client.cookies.clear()
    login(client, "boss", PASSWORD)
    html = client.get("/work-orders", params={"lang": "en", "site": SITE}).text
    card = html[html.index('data-work-order="1"'):]
    card = card[:card.index("</article>")]
    assert set(re.findall(r'data-step="(\w+)"', card)) == {
        "acknowledge", "assign", "close", "cancel"}
    assert 'data-ask="Why? (required)"' in card  # closing unresolved, cancelling: a reason
    client.cookies.clear()
    login(client, "vic", PASSWORD)
    assert "data-step" not in client.get("/work-orders").text


def test_gaps_acknowledged_many_at_once_by_a_supervisor_only(
        client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/patrol", params={"lang": "en"}).text
    gaps = re.findall(r'data-gap="(\d+)"', html)
    assert len(gaps) == 3 and "North fence" in html
    assert 'name="gap"' not in html  # an engineer gets no boxes
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    refused = client.post("/patrol/acknowledge", data={"gap": gaps, "csrf_token": token.group(1)})
    assert refused.status_code == 403
    client.cookies.clear()
    login(client, "boss", PASSWORD)
    html = client.get("/patrol", params={"site": SITE}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    assert client.post("/patrol/acknowledge", params={"site": SITE},
                       data={"gap": gaps[:2]}).status_code == 403  # no CSRF token
    done = client.post("/patrol/acknowledge", params={"site": SITE}, follow_redirects=False,
                       data={"gap": gaps[:2], "note": "walked late", "csrf_token": token.group(1)})
    assert done.status_code == 303
    left = re.findall(r'data-gap="(\d+)"', client.get("/patrol", params={"site": SITE}).text)
    assert left == [gaps[2]]


def test_a_guard_sees_only_their_own_runs_and_gaps(client: TestClient, estate: str) -> None:
    login(client, "li", PASSWORD)
    html = client.get("/patrol", params={"lang": "en"}).text
    assert "data-gap=" not in html and "Night perimeter" not in html
    assert "Day building patrol" in html  # g-li's own schedule is next due
    client.cookies.clear()
    login(client, "zhang", PASSWORD)
    html = client.get("/patrol", params={"lang": "en"}).text
    assert len(re.findall(r'data-gap="', html)) == 3 and 'name="gap"' not in html


def test_kpis_of_the_week_and_the_stored_reports(client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    page = client.get("/reports", params={"lang": "en"})
    assert page.status_code == 200, page.text
    assert len(re.findall(r'data-kpi="', page.text)) == 13
    assert "Repair timeliness" in page.text and "2026-W48" in page.text
    assert "2026-W47" in client.get("/reports", params={"week": "last"}).text
    client.cookies.clear()
    login(client, "li", PASSWORD)
    assert client.get("/reports").status_code == 403  # a guard's handheld has no use for them


def test_equipment_rounds_due_and_done_with_findings(client: TestClient, estate: str) -> None:
    login(client, "eve", PASSWORD)
    html = client.get("/inspections", params={"lang": "en"}).text
    due = html[html.index('id="rounds-due"'):html.index('id="rounds-done"')]
    done = html[html.index('id="rounds-done"'):html.index('id="findings"')]
    assert "Daily plant inspection" in due and "0 / 2" in due and "scheduled" in due
    assert "1 / 2" in done and "incomplete" in done
    assert "seal: dripping" in html
    client.cookies.clear()
    login(client, "li", PASSWORD)  # g-li has no equipment rounds
    html = client.get("/inspections", params={"lang": "en"}).text
    assert "data-run=" not in html and "seal" not in html


def test_runs_by_guard_and_day_with_each_visits_classification(
        client: TestClient, estate: str, api_clock: FakeClock) -> None:
    login(client, "eve", PASSWORD)
    page = client.get("/patrol/runs", params={"lang": "en"})
    assert page.status_code == 200, page.text
    html = page.text
    li = html[html.index('data-guard="g-li"'):]
    li = li[:li.index("</section>")]
    assert "Li Qiang" in li and "Day building patrol" in li
    assert re.findall(r'data-status="(\w+)"', li) == ["on_time", "out_of_order", "late", "missed"]
    assert "out of order" in li and "late" in li and "missed" in li
    assert "on no planned run (wrong route or time)" in li  # the scan at the car park
    assert 'data-guard="g-zhang"' in html and "Night perimeter" in html
    yesterday = (api_clock() - timedelta(days=1)).date().isoformat()
    html = client.get("/patrol/runs", params={"lang": "en", "day": yesterday}).text
    assert 'data-guard="g-chen"' in html and "Daily plant inspection" in html
    only = client.get("/patrol/runs", params={"lang": "en", "guard": "g-zhang"}).text
    assert 'data-guard="g-zhang"' in only and 'data-guard="g-li"' not in only
    assert client.get("/patrol/runs", params={"day": "yesterday"}).status_code == 422
    client.cookies.clear()
    login(client, "zhang", PASSWORD)  # a guard sees only their own runs, whatever is asked
    html = client.get("/patrol/runs", params={"lang": "en", "guard": "g-li"}).text
    assert 'data-guard="g-li"' not in html and "No runs this day." in html
    html = client.get("/patrol/runs", params={"lang": "en"}).text
    assert 'data-guard="g-zhang"' in html and 'data-guard="g-li"' not in html
    assert "Day building patrol" not in html


def test_the_wall_display_and_its_viewer_session_kept_alive(
        client: TestClient, estate: str, api_clock: FakeClock) -> None:
    api_clock.advance(minutes=1)  # the seeded work order's response deadline has passed
    login(client, "vic", PASSWORD)
    page = client.get("/wall", params={"lang": "en"})
    assert page.status_code == 200, page.text
    html = page.text
    assert 'class="wall"' in html and 'nav class="pages"' not in html  # no navigation
    assert 'data-wall="1"' in html and "stays logged in while shown" in html
    alarms = html[html.index('id="wall-alarms"'):html.index('id="wall-overdue"')]
    overdue = html[html.index('id="wall-overdue"'):html.index('id="wall-gaps"')]
    gaps = html[html.index('id="wall-gaps"'):]
    assert "Pump vibration high" in alarms
    assert "Check pump 1 bearings" in overdue and "Response overdue by 0:01:00" in overdue
    assert len(re.findall(r'data-gap="', gaps)) == 3
    assert re.search(r'data-device="pump-1"', html)
    # Polled by the wall, a viewer's session outlives both timeouts (2 h idle, 12 h in all).
    for _ in range(14):
        api_clock.advance(hours=1)
        assert client.get("/console/live.json", params={"wall": 1}).status_code == 200
    assert client.get("/wall").status_code == 200
    # Anyone else's session ends as usual, wall or not (an engineer's lasts a shift: 13 h).
    client.cookies.clear()
    login(client, "eve", PASSWORD)
    for _ in range(12):
        api_clock.advance(hours=1)
        assert client.get("/console/live.json", params={"wall": 1}).status_code == 200
    api_clock.advance(hours=1)  # 13 hours in all
    assert client.get("/console/live.json", params={"wall": 1}).status_code == 401


def test_manual_tickets_and_complaints_from_the_board_with_the_pages_token(
        client: TestClient, estate: str, api_clock: FakeClock) -> None:
    with psycopg.connect(estate) as conn:
        create_user(conn, "fay", PASSWORD, role="frontdesk", site_id=SITE)
    login(client, "vic", PASSWORD)
    html = client.get("/work-orders", params={"lang": "en"}).text
    assert 'id="new-work-order"' not in html and 'id="new-complaint"' not in html
    client.cookies.clear()
    login(client, "eve", PASSWORD)  # an engineer reports faults but registers no complaints
    html = client.get("/work-orders", params={"lang": "en"}).text
    assert 'id="new-work-order"' in html and 'id="new-complaint"' not in html
    client.cookies.clear()
    login(client, "fay", PASSWORD)
    html = client.get("/work-orders", params={"lang": "en"}).text
    assert 'data-api="/api/v1/work-orders"' in html and 'data-api="/api/v1/complaints"' in html
    assert '<option value="居家维修">in-home repair</option>' in html
    ticket = {"site": SITE, "category": "公区维修", "urgency": "急修", "channel": "phone",
              "zone": "car-park",
              "reporter": {"name": "陈女士", "unit": "3-1201", "phone": "13812345678"},
              "description": "B3 车库入口积水"}
    refused = client.post("/api/v1/work-orders", json=ticket)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    made = client.post("/api/v1/work-orders", json=ticket, headers={"X-CSRF-Token": _csrf(html)})
    assert made.status_code == 201, made.text
    complaint = {"site": SITE, "grade": "一般", "category": "秩序管理", "channel": "phone",
                 "complainant": {"name": "王先生", "unit": "2-1503"},
                 "description": "楼上装修夜间仍在施工"}
    filed = client.post("/api/v1/complaints", json=complaint,
                        headers={"X-CSRF-Token": _csrf(html)})
    assert filed.status_code == 201, filed.text
    html = client.get("/work-orders", params={"lang": "en"}).text
    card = html[html.index(f'data-work-order="{made.json()["id"]}"'):]
    card = card[:card.index("</article>")]
    respond_by = made.json()["respond_by"]
    assert "B3 车库入口积水" in card and "Response due in" in card
    deadline = re.search(r'data-deadline="([\d.]+)"', card)
    assert deadline and float(deadline.group(1)) == datetime_of(respond_by).timestamp()
    assert 'data-late="Response overdue by {t}"' in card
    row = html[html.index(f'data-complaint="{filed.json()["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert filed.json()["number"] in row and "order and security" in row
    assert "Answer due in" in row and "王先生" not in row  # names stay on the complaint
    assert set(re.findall(r'data-step="([\w-]+)"', row)) == {"c-assign", "c-answer"}

    # Answered, the complaint is to be visited: the queue offers the attempt's form.
    answered = client.post(f"/api/v1/complaints/{filed.json()['id']}/answer",
                           json={"answer": "已约谈装修方"}, headers={"X-CSRF-Token": _csrf(html)})
    assert answered.status_code == 200, answered.text
    html = client.get("/work-orders", params={"lang": "en"}).text
    queue = html[html.index('id="follow-ups"'):]
    queue = queue[:queue.index("</table>")]
    path = f'/api/v1/complaints/{filed.json()["id"]}/follow-ups'
    assert f'data-api="{path}"' in queue and "王先生" in queue  # the front desk calls them
    visit = client.post(path, json={"outcome": "reached", "channel": "phone", "satisfaction": 5},
                        headers={"X-CSRF-Token": _csrf(html)})
    assert visit.status_code == 201, visit.text
    html = client.get("/work-orders", params={"lang": "en"}).text
    assert f'data-api="{path}"' not in html
    client.cookies.clear()
    login(client, "vic", PASSWORD)  # a viewer sees the board's lists, masked, and no forms
    html = client.get("/work-orders", params={"lang": "en"}).text
    assert "visit-form" not in html and "data-step" not in html


def datetime_of(text: str) -> datetime:
    return datetime.fromisoformat(text)
