"""Follow-up visits (回访) through the real API: attempts, rework, the queue, spot checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from stack.app import load_site
from tickets import complaints

Tokens = Callable[..., dict[str, str]]
SITE, OTHER = "rs", "os"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
API = "/api/v1"


def make_sites(conn: psycopg.Connection, policy: dict[str, Any] | None = None) -> None:
    """Two sites; `policy` is loaded as rs's `follow_up_policy:` site-file section."""
    doc: dict[str, Any] = {"site": {"id": SITE, "name": "Riverside", "timezone": "Asia/Shanghai"}}
    if policy is not None:
        doc["follow_up_policy"] = policy
    load_site(conn, doc, now=T0)
    load_site(conn, {"site": {"id": OTHER, "name": "Other"}}, now=T0)
    conn.commit()


def work_order(conn: psycopg.Connection, now: datetime, *, site: str = SITE,
               category: str = "居家维修", source: str = "manual", state: str = "resolved",
               name: str = "张三", phone: str = "13812345678",
               opened: datetime | None = None) -> int:
    """A ticket as a manual report (报事报修) would make it, in `state` at `now`."""
    done = state in ("resolved", "closed")
    row = conn.execute(
        "INSERT INTO work_orders (site_id, source, severity, priority, title, opened_at,"
        " respond_by, resolve_by, updated_at, category, urgency, channel, reporter_name,"
        " reporter_unit, reporter_phone, state, acknowledged_at, started_at, resolved_at,"
        " closed_at) VALUES (%s, %s, 'minor', 3, 'Kitchen tap leaks', %s, %s, %s, %s, %s, '零修',"
        " 'phone', %s, '3-1202', %s, %s, %s, %s, %s, %s) RETURNING id",
        (site, source, opened or now - timedelta(hours=5), now, now + timedelta(days=1), now,
         category,
         name, phone, state, now if done else None, now if done else None,
         now if done else None, now if state == "closed" else None)).fetchone()
    conn.commit()
    assert row is not None
    return int(row["id"])


def complaint(conn: psycopg.Connection, now: datetime, *, site: str = SITE,
              answered: bool = True) -> int:
    """A complaint inserted as its API would (numbered), answered at `now` if asked."""
    n = conn.execute("SELECT count(*) + 1 AS n FROM complaints").fetchone()
    row = conn.execute(
        "INSERT INTO complaints (site_id, number, grade, category, channel, complainant_name,"
        " complainant_unit, complainant_phone, description, opened_at, answer_by, created_by,"
        " updated_at) VALUES (%s, %s, '一般', '环境管理', 'phone', '李四', '5-0301',"
        " '13900001111', 'Rubbish left in the stairwell for two days', %s, %s, 'frontdesk', %s)"
        " RETURNING id",
        (site, f"TS-2026-{n['n'] if n else 1:04d}", now - timedelta(hours=3),
         now + timedelta(days=3), now)).fetchone()
    assert row is not None
    cid = int(row["id"])
    if answered:
        complaints.step(conn, cid, "answer", actor="frontdesk", now=now,
                        sets={"answer": "cleaned, cleaner reminded", "answered_at": now})
    conn.commit()
    return cid


def queue(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"{API}/follow-ups", params=params, headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def visit(client: TestClient, headers: dict[str, str], path: str, **body: Any) -> Any:
    return client.post(f"{API}/{path}/follow-ups", json={"channel": "phone", **body},
                       headers=headers)


def test_unreachable_then_dissatisfied_rework_then_revisit(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    t0 = api_clock()
    wo = work_order(conn, t0, state="open")
    desk, eng = make_token("frontdesk", site=SITE), make_token("engineer", site=SITE)
    path = f"work-orders/{wo}"

    # Not done yet: no visit, nothing queued.
    r = visit(client, desk, path, outcome="reached", satisfaction=5)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert queue(client, desk) == []
    for step in ("acknowledge", "start", "resolve"):
        assert client.post(f"{API}/{path}/{step}", json={}, headers=eng).status_code == 200
    [item] = queue(client, desk, due="true")
    assert (item["kind"], item["id"], item["attempts"]) == ("work_order", wo, 0)
    assert item["contact_name"] == "张三" and item["contact_phone"] == "13812345678"
    assert item["due_at"] == item["done_at"] == t0.isoformat().replace("+00:00", "Z")

    # Unreachable: a valid attempt; the retry is due a day later (the default policy).
    r = visit(client, desk, path, outcome="unreachable", opinion="no answer")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["attempt"] == 1 and not first["reworked"]
    assert first["next_attempt_at"] == (t0 + timedelta(days=1)).isoformat().replace("+00:00",
                                                                                      "Z")
    assert queue(client, desk, due="true") == []
    [waiting] = queue(client, desk, due="false")
    assert waiting["attempts"] == 1 and waiting["last_at"] == first["at"]
    api_clock.advance(hours=23, minutes=59)
    assert queue(client, desk, due="true") == []
    api_clock.advance(minutes=1)
    assert [i["id"] for i in queue(client, desk, due="true")] == [wo]

    # Reached but no satisfaction: refused; satisfaction on an unreachable one too.
    r = visit(client, desk, path, outcome="reached")
    assert r.status_code == 422
    assert visit(client, desk, path, outcome="unreachable", satisfaction=3).status_code == 422
    assert visit(client, desk, path, outcome="reached", satisfaction=9).status_code == 422
    assert visit(client, desk, path, outcome="reached", satisfaction=4,
                 channel="fax").status_code == 422

    # Dissatisfied: the work goes back (rework), and leaves the queue while it is redone.
    r = visit(client, desk, path, outcome="reached", satisfaction=2,
              opinion="still drips at night")
    assert r.status_code == 201 and r.json()["reworked"] and r.json()["attempt"] == 2
    ticket = client.get(f"{API}/{path}", headers=eng).json()
    assert ticket["state"] == "in_progress" and ticket["resolved_at"] is None
    assert ticket["history"][-1]["action"] == "rework"
    assert "satisfaction 2: still drips at night" in ticket["history"][-1]["note"]
    assert conn.execute("SELECT rework_count FROM work_orders WHERE id = %s",
                        (wo,)).fetchone()["rework_count"] == 1
    assert queue(client, desk) == []
    # While it is being redone there is nothing to visit.
    assert visit(client, desk, path, outcome="reached", satisfaction=5).status_code == 409

    # Resolved again: due again, attempts counted afresh; a satisfied visit concludes it.
    api_clock.advance(hours=3)
    assert client.post(f"{API}/{path}/resolve", json={}, headers=eng).status_code == 200
    [again] = queue(client, desk, due="true")
    assert again["attempts"] == 0 and again["rework_count"] == 1
    r = visit(client, desk, path, outcome="reached", satisfaction=5, channel="visit")
    assert r.status_code == 201 and not r.json()["reworked"] and r.json()["attempt"] == 1
    assert queue(client, desk) == []

    visits = client.get(f"{API}/{path}/follow-ups", headers=make_token("viewer")).json()
    assert visits["total"] == 3
    assert [(v["outcome"], v["satisfaction"]) for v in visits["items"]] == [
        ("unreachable", None), ("reached", 2), ("reached", 5)]
    assert all(v["actor"] == "frontdesk@rs" for v in visits["items"])


def test_who_may_record_visits_and_see_the_queue(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    wo = work_order(conn, api_clock())
    other = work_order(conn, api_clock(), site=OTHER)
    path = f"work-orders/{wo}"
    for role in ("guard", "viewer"):
        assert visit(client, make_token(role), path,
                     outcome="unreachable").status_code == 403
    assert visit(client, {}, path, outcome="unreachable").status_code == 401
    assert visit(client, make_token("frontdesk", site=OTHER), path,
                 outcome="unreachable").status_code == 404
    assert client.get(f"{API}/{path}/follow-ups",
                      headers=make_token("viewer", site=OTHER)).status_code == 404
    tried = work_order(conn, api_clock())
    for role in ("engineer", "supervisor", "admin"):  # the third unreachable try is the last
        assert visit(client, make_token(role), f"work-orders/{tried}",
                     outcome="unreachable").status_code == 201

    # The queue, in scope: a site's token sees its site; names and phones masked for viewers.
    assert {i["id"] for i in queue(client, make_token("admin"))} == {wo, other}
    [mine] = queue(client, make_token("supervisor", site=SITE))
    assert mine["id"] == wo and mine["contact_phone"] == "13812345678"
    [masked] = queue(client, make_token("viewer", site=OTHER))
    assert masked["id"] == other
    assert masked["contact_phone"] == "138****5678" and masked["contact_name"] == "张*"
    r = client.get(f"{API}/follow-ups", params={"site": SITE},
                   headers=make_token("viewer", site=OTHER))
    assert r.status_code == 403


def test_the_queue_follows_the_policy_per_category(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    now = api_clock()
    repairs = [work_order(conn, now, category="公区维修") for _ in range(20)]
    paid = [work_order(conn, now, category="居家维修") for _ in range(3)]
    sensor = [work_order(conn, now, category="设备", source="alarm") for _ in range(2)]
    unfinished = work_order(conn, now, category="居家维修", state="in_progress")
    sup = make_token("supervisor")

    # Defaults: paid services 100 %, repairs 90 % (every 10th of the category skipped),
    # alarm tickets have nobody to call; complaints 100 %.
    ids = {i["id"] for i in queue(client, sup, due="true")}
    assert ids >= set(paid) and not ids & set(sensor) and unfinished not in ids
    assert sorted(ids & set(repairs)) == [w for k, w in enumerate(repairs, 1) if k % 10]
    assert client.get(f"{API}/follow-ups", params={"limit": 5},
                      headers=sup).json()["total"] == 21

    # A site's own policy: half the repairs, sensor tickets too, no paid services.
    make_sites(conn, {"rates": {"公区维修": 50, "居家维修": 0},
                      "sources": ["manual", "alarm"]})
    ids = {i["id"] for i in queue(client, sup)}
    assert len(ids & set(repairs)) == 10 and set(sensor) <= ids and not ids & set(paid)
    assert sorted(ids & set(repairs)) == repairs[::2]  # ranks 1, 3, 5, ...: evenly spread
    assert client.get(f"{API}/follow-ups", params={"kind": "complaint"},
                      headers=sup).json()["total"] == 0


def test_shares_count_each_month_and_old_tickets_leave_the_queue(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn, {"give_up_after": "30d"})
    now = api_clock()  # 2026-11-23 16:00 in Shanghai
    # Nine opened in October and one on 1 November, 00:30 Shanghai time (still 31 October
    # in UTC): each month's count starts afresh, so no 10th ticket is skipped.
    october = [work_order(conn, now, category="整改", opened=datetime(2026, 10, 5, tzinfo=UTC))
               for _ in range(9)]
    november = work_order(conn, now, category="整改",
                          opened=datetime(2026, 10, 31, 16, 30, tzinfo=UTC))
    sup = make_token("supervisor")
    assert {i["id"] for i in queue(client, sup)} == {*october, november}
    # A ticket done more than give_up_after ago has left the queue, visited or not.
    api_clock.advance(days=30)
    assert len(queue(client, sup)) == 10
    api_clock.advance(seconds=1)
    assert queue(client, sup) == []


def test_retry_timing_maximum_attempts_and_lateness(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn, {"retry_after": "2h", "max_attempts": 2, "due_within": "1d"})
    wo = work_order(conn, api_clock())
    desk = make_token("frontdesk")
    path = f"work-orders/{wo}"
    r = visit(client, desk, path, outcome="unreachable")
    assert r.json()["next_attempt_at"] is not None
    api_clock.advance(hours=1, minutes=59)
    assert queue(client, desk, due="true") == []
    api_clock.advance(minutes=1)
    [item] = queue(client, desk, due="true")
    assert item["attempts"] == 1 and not item["overdue"]
    # The second unreachable attempt is the last the policy asks for.
    r = visit(client, desk, path, outcome="unreachable")
    assert r.json()["attempt"] == 2 and r.json()["next_attempt_at"] is None
    assert queue(client, desk) == []

    # Lateness: a visit not concluded within due_within of the resolution is overdue.
    late = work_order(conn, api_clock())
    api_clock.advance(hours=23)
    assert queue(client, desk, overdue="true") == []
    api_clock.advance(hours=2)
    [item] = queue(client, desk, overdue="true")
    assert item["id"] == late and item["overdue"]
    # A refused visit concludes it too (the resident declines to be asked).
    r = visit(client, desk, f"work-orders/{late}", outcome="refused")
    assert r.status_code == 201 and r.json()["next_attempt_at"] is None
    assert queue(client, desk) == []


def test_complaint_visits_rework_and_revisit(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    desk = make_token("frontdesk", site=SITE)
    pending = complaint(conn, api_clock(), answered=False)
    assert visit(client, desk, f"complaints/{pending}", outcome="unreachable").status_code == 409
    cid = complaint(conn, api_clock())
    [item] = queue(client, desk, kind="complaint")
    assert item["id"] == cid and item["number"] == "TS-2026-0002"
    assert item["contact_phone"] == "13900001111" and item["category"] == "环境管理"

    api_clock.advance(hours=2)
    r = visit(client, desk, f"complaints/{cid}", outcome="reached", satisfaction=1,
              opinion="still dirty")
    assert r.status_code == 201 and r.json()["reworked"]
    row = conn.execute("SELECT state, rework_count FROM complaints WHERE id = %s",
                       (cid,)).fetchone()
    assert (row["state"], row["rework_count"]) == ("rework", 1)
    conn.rollback()
    assert queue(client, desk) == []

    # Answered again: the complaint is due for another visit; satisfied closes the loop.
    api_clock.advance(hours=5)
    complaints.step(conn, cid, "answer", actor="frontdesk", now=api_clock(),
                    sets={"answer": "cleaned again, checked daily"})
    conn.commit()
    [again] = queue(client, desk, due="true")
    assert again["id"] == cid and again["done_at"] == api_clock().isoformat().replace(
        "+00:00", "Z")
    r = visit(client, desk, f"complaints/{cid}", outcome="reached", satisfaction=4)
    assert r.status_code == 201 and not r.json()["reworked"]
    assert queue(client, desk) == []
    # Closing it as handled after the visit asks for no further visit.
    complaints.step(conn, cid, "close", actor="supervisor", now=api_clock(),
                    sets={"resolution": "handled", "closed_at": api_clock()})
    conn.commit()
    assert queue(client, desk) == []
    listed = client.get(f"{API}/complaints/{cid}/follow-ups", headers=desk).json()
    assert [v["satisfaction"] for v in listed["items"]] == [1, 4]
    assert all(v["complaint_id"] == cid and v["work_order_id"] is None
               for v in listed["items"])


def test_spot_checks_by_supervisors(conn: psycopg.Connection, client: TestClient,
                                    make_token: Tokens, api_clock: FakeClock) -> None:
    make_sites(conn)
    wo = work_order(conn, api_clock())
    sup = make_token("supervisor", site=SITE)
    r = visit(client, make_token("frontdesk", site=SITE), f"work-orders/{wo}",
              outcome="reached", satisfaction=5)
    visit_id = r.json()["id"]
    check = f"{API}/follow-ups/{visit_id}/check"
    body = {"result": "confirmed", "note": "called back, resident confirms"}
    for role in ("frontdesk", "engineer", "viewer"):
        assert client.post(check, json=body, headers=make_token(role)).status_code == 403
    assert client.post(check, json=body,
                       headers=make_token("supervisor", site=OTHER)).status_code == 404
    assert client.post(check, json={"result": "fine"}, headers=sup).status_code == 422
    unchecked = client.get(f"{API}/follow-ups/visits", params={"checked": "false"},
                           headers=sup).json()
    assert [v["id"] for v in unchecked["items"]] == [visit_id]

    api_clock.advance(hours=4)
    r = client.post(check, json=body, headers=sup)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["checked_by"], done["check_result"], done["check_note"]) == (
        "supervisor@rs", "confirmed", "called back, resident confirms")
    assert done["checked_at"] == api_clock().isoformat().replace("+00:00", "Z")
    assert client.post(check, json=body, headers=make_token("admin")).status_code == 409
    assert client.get(f"{API}/follow-ups/visits", params={"checked": "false"},
                      headers=sup).json()["total"] == 0

    # A supervisor's own visit is checked by someone else.
    own = visit(client, sup, f"work-orders/{wo}", outcome="reached", satisfaction=4).json()
    r = client.post(f"{API}/follow-ups/{own['id']}/check", json=body, headers=sup)
    assert r.status_code == 403
    r = client.post(f"{API}/follow-ups/{own['id']}/check",
                    json={"result": "not_confirmed"}, headers=make_token("supervisor"))
    assert r.status_code == 200 and r.json()["check_result"] == "not_confirmed"
