"""Handover sheets: written at the shift change, signed by two different engineers, the
supervisor told once of an unsigned one; JSON, HTML and PDF; scoping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.tokens import create_token
from reports import handover
from tests.reports.helpers import load_example, pdf_text
from tests.reports.test_kpis_records import work_order

Conn = psycopg.Connection[Any]
SITE = "riverside"
CHANGE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai


def token(database: str, role: str, name: str, site: str | None = SITE) -> dict[str, str]:
    with psycopg.connect(database) as c:
        secret = create_token(c, role=role, name=name, site_id=site)
    return {"Authorization": f"Bearer {secret}"}


def sheet(conn: Conn) -> int:
    """The example site with an overdue ticket and an offline pump; the 20:00 sheet."""
    load_example(conn, CHANGE - timedelta(days=3))
    work_order(conn, site=SITE, opened=CHANGE - timedelta(days=2), device="pump-1",
               resolve_by=CHANGE - timedelta(hours=1), source="alarm", category="设备")
    conn.execute("UPDATE devices SET online = false, online_changed_at = %s"
                 " WHERE site_id = %s AND id = 'pump-2'", (CHANGE - timedelta(hours=2), SITE))
    made = handover.write_due(conn, CHANGE + timedelta(seconds=5))
    conn.commit()
    assert len(made) == 1
    return made[0]


def test_written_once_at_each_change(conn: Conn) -> None:
    sheet_id = sheet(conn)
    assert handover.write_due(conn, CHANGE + timedelta(minutes=10)) == []
    row = handover.get(conn, sheet_id, scope=None)
    assert row["shift_start"] == CHANGE - timedelta(hours=12)
    assert row["shift_end"] == CHANGE
    assert [d["id"] for d in row["content"]["devices_offline"]] == ["pump-2"]
    assert [t["overdue"] for t in row["content"]["open_tickets"]] == [True]
    # the next change (08:00) writes the next sheet, carrying the notes over
    conn.execute("UPDATE handovers SET outgoing_by = 'eng-a', outgoing_at = %s,"
                 " outgoing_note = '2号泵振动偏大，请关注' WHERE id = %s", (CHANGE, sheet_id))
    nxt = handover.write_due(conn, CHANGE + timedelta(hours=12, seconds=1))
    assert len(nxt) == 1
    notes = handover.get(conn, nxt[0], scope=None)["content"]["notes"]
    assert notes == [{"by": "eng-a", "side": "outgoing", "note": "2号泵振动偏大，请关注"}]


def test_signed_by_two_different_engineers(conn: Conn, client: TestClient, database: str,
                                           api_clock: FakeClock) -> None:
    sheet_id = sheet(conn)
    api_clock.set(CHANGE + timedelta(minutes=5))
    zhao, qian = token(database, "engineer", "eng-zhao"), token(database, "engineer", "eng-qian")
    url = f"/api/v1/handovers/{sheet_id}"
    r = client.post(url + "/sign", headers=zhao,
                    json={"side": "outgoing", "note": "2号泵离线，已报修"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "awaiting"
    again = client.post(url + "/sign", headers=zhao, json={"side": "incoming"})
    assert again.status_code == 409  # the same person cannot sign both sides
    assert client.post(url + "/sign", headers=qian, json={"side": "outgoing"}).status_code == 409
    r = client.post(url + "/sign", headers=qian, json={"side": "incoming", "note": "已接收"})
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "signed"
    assert body["outgoing"]["by"] == "eng-zhao" and body["incoming"]["by"] == "eng-qian"
    assert client.post(url + "/sign", headers=token(database, "viewer", "v"),
                       json={"side": "incoming"}).status_code == 403
    assert client.post(url + "/sign", headers=qian, json={"side": "sideways"}).status_code == 422
    # signed in time: the supervisor hears nothing
    assert handover.notify_unsigned(conn, CHANGE + timedelta(hours=1)) == []
    pdf = pdf_text(client.get(url + ".pdf", headers=zhao).content)
    assert "工程交接班记录" in pdf and "eng-zhao" in pdf and "已接收" in pdf
    assert "离线设备" in pdf


def test_unsigned_tells_the_supervisor_once(conn: Conn) -> None:
    sheet_id = sheet(conn)
    assert handover.notify_unsigned(conn, CHANGE + timedelta(minutes=29)) == []
    assert handover.notify_unsigned(conn, CHANGE + timedelta(minutes=30)) == [sheet_id]
    assert handover.notify_unsigned(conn, CHANGE + timedelta(minutes=31)) == []
    row = handover.get(conn, sheet_id, scope=None)
    assert row["unsigned_notified_at"] == CHANGE + timedelta(minutes=30)
    assert handover.state_of(row, CHANGE + timedelta(minutes=31)) == "unsigned_late"


def test_json_html_pdf_list_and_scoping(conn: Conn, client: TestClient, database: str,
                                        make_token: Callable[..., dict[str, str]]) -> None:
    sheet_id = sheet(conn)
    h = token(database, "supervisor", "sup")
    url = f"/api/v1/handovers/{sheet_id}"
    assert client.get(url, headers=h).json()["content"]["devices_offline"][0]["id"] == "pump-2"
    assert client.get(url, headers={**h, "Accept": "text/html"}).text.startswith("<!DOCTYPE")
    assert client.get(url, headers={**h, "Accept": "application/pdf"}).content[:4] == b"%PDF"
    assert client.get(url + ".html", headers=h).headers["content-type"].startswith("text/html")
    listed = client.get("/api/v1/handovers", params={"site": SITE}, headers=h).json()
    assert [i["id"] for i in listed["items"]] == [sheet_id]
    conn.execute("INSERT INTO sites (id, name) VALUES ('other', 'Other')")
    conn.commit()
    other = make_token("engineer", site="other")
    assert client.get(url, headers=other).status_code == 404
    assert client.get(url + ".pdf", headers=other).status_code == 404
    assert client.post(url + "/sign", headers=other, json={"side": "outgoing"}).status_code == 404
    assert client.get("/api/v1/handovers", headers=other).json()["total"] == 0
