"""The stored weekly report: made once with two workers racing and after a restart; listed,
downloaded by Accept and by suffix, scoped; the API, the HTML and the PDF agree."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from reports import i18n, store, weekly
from reports.periods import Week
from tests.reports.helpers import load_example, pdf_text, squeeze
from tests.reports.test_kpis_records import complaint, follow_up, work_order

Conn = psycopg.Connection[Any]
Token = Callable[..., dict[str, str]]
SITE = "riverside"  # Asia/Shanghai
WEEK = Week(2026, 47)  # Monday 16 .. Sunday 22 November 2026
# Monday 23 November 2026, 08:00 in Shanghai: week 47's report is due
DUE = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def records(conn: Conn) -> None:
    """The example site, with a week of work orders, a complaint and a follow-up visit."""
    load_example(conn, DUE - timedelta(days=30))
    due = utc(2026, 11, 18, 2)
    on_time = work_order(conn, site=SITE, opened=due - timedelta(hours=3), resolve_by=due,
                         state="resolved", resolved_at=due - timedelta(hours=1),
                         acknowledged_at=due - timedelta(hours=2, minutes=50))
    work_order(conn, site=SITE, opened=due - timedelta(hours=5), resolve_by=due,
               state="resolved", resolved_at=due + timedelta(hours=2), category="居家维修",
               acknowledged_at=due - timedelta(hours=4))
    work_order(conn, site=SITE, opened=due, resolve_by=due + timedelta(days=1),
               device="pump-2", source="alarm", category="设备")  # still open: late
    complaint(conn, "TS-2026-0001", site=SITE, opened=due - timedelta(days=1),
              answer_by=due + timedelta(days=2), state="closed", resolution="handled",
              answered_at=due, closed_at=due + timedelta(hours=5))
    follow_up(conn, site=SITE, at=due + timedelta(hours=3), work_order=on_time,
              satisfaction=5)
    conn.commit()


def count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) AS n FROM reports").fetchone()
    assert row is not None
    return int(row["n"])


def test_made_once_with_two_workers_racing_and_after_a_restart(conn: Conn,
                                                              database: str) -> None:
    records(conn)
    # Monday 07:59: week 47 is not due yet (week 46's report is the latest due)
    early = store.weekly_due(conn, DUE - timedelta(minutes=1))
    conn.commit()
    assert conn.execute("SELECT array_agg(period) AS p FROM reports").fetchone() == {
        "p": ["2026-W46"]} and len(early) == 1
    barrier = threading.Barrier(2)
    made: list[list[int]] = []

    def worker() -> None:
        with psycopg.connect(database, row_factory=dict_row) as own:
            barrier.wait()
            made.append(store.weekly_due(own, DUE))
            own.commit()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(len(m) for m in made) == [0, 1]
    assert count(conn) == 2
    # a restart an hour later, and the next day: nothing new for week 47
    with psycopg.connect(database, row_factory=dict_row) as again:
        assert store.weekly_due(again, DUE + timedelta(hours=1)) == []
        assert store.weekly_due(again, DUE + timedelta(days=1)) == []
        again.commit()
    assert count(conn) == 2
    row = conn.execute("SELECT period, language, created_by FROM reports"
                       " WHERE period = '2026-W47'").fetchone()
    assert row == {"period": "2026-W47", "language": "zh-CN", "created_by": "schedule"}


def test_a_missed_monday_is_caught_up(conn: Conn) -> None:
    records(conn)
    # the worker was down from Sunday until Wednesday
    made = store.weekly_due(conn, DUE + timedelta(days=2, hours=3))
    assert len(made) == 1
    row = conn.execute("SELECT period FROM reports WHERE id = %s", (made[0],)).fetchone()
    assert row == {"period": "2026-W47"}


def test_the_site_files_language_and_schedule(conn: Conn) -> None:
    from caretaker.site_config import example_document
    from stack.app import load_site

    doc = example_document()
    doc["reports"] = {"language": "en", "weekly": {"day": "tuesday", "at": "09:30"}}
    load_site(conn, doc, now=DUE)
    conn.commit()
    periods = "SELECT period, language FROM reports WHERE id = ANY(%s) ORDER BY id"
    made = store.weekly_due(conn, DUE + timedelta(days=1))  # Tuesday 08:00: not yet week 47
    assert conn.execute(periods, (made,)).fetchall() == [
        {"period": "2026-W46", "language": "en"}]
    made = store.weekly_due(conn, DUE + timedelta(days=1, hours=1, minutes=30))
    assert conn.execute(periods, (made,)).fetchall() == [
        {"period": "2026-W47", "language": "en"}]


@pytest.fixture
def report_id(conn: Conn) -> int:
    records(conn)
    made = store.make_weekly(conn, SITE, WEEK, now=DUE)
    conn.commit()
    assert made is not None
    return made


def test_api_html_and_pdf_show_the_same_kpi_values(conn: Conn, client: TestClient,
                                                   make_token: Token, api_clock: FakeClock,
                                                   report_id: int) -> None:
    api_clock.set(DUE)
    viewer = make_token("viewer")
    kpis = client.get("/api/v1/kpis", headers=viewer, params={
        "site": SITE, "from": "2026-11-16", "to": "2026-11-22"}).json()["kpis"]
    stored = client.get(f"/api/v1/reports/{report_id}",
                        headers={**viewer, "Accept": "application/json"}).json()
    html = client.get(f"/api/v1/reports/{report_id}.html", headers=viewer).text
    pdf = pdf_text(client.get(f"/api/v1/reports/{report_id}.pdf", headers=viewer).content)
    counted = 0
    for name, k in stored["kpis"].items():
        assert k["value"] == pytest.approx(kpis[name]["value"]), name
        assert k["previous"] == pytest.approx(kpis[name]["previous"]), name
        if weekly.kind_of(name) == "ratio" and k["value"] is not None:
            shown = squeeze(i18n.format_percent(k["value"], "zh-CN"))
            assert f'data-kpi="{name}"' in html
            row = squeeze(html.split(f'data-kpi="{name}"')[1].split("</tr>")[0])
            assert shown in row, name
            assert shown in pdf, name
            counted += 1
    assert counted >= 3  # repair timeliness, follow-ups, complaints, equipment ...
    assert stored["kpis"]["repair_timeliness"]["value"] == pytest.approx(1 / 3)
    assert "零修急修及时率" in pdf and "33.3%" in pdf


def test_download_by_accept_and_by_suffix(client: TestClient, make_token: Token,
                                          report_id: int) -> None:
    h = make_token("supervisor", site=SITE)
    url = f"/api/v1/reports/{report_id}"
    pdf = client.get(url, headers={**h, "Accept": "application/pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get(url, headers=h).content.startswith(b"%PDF")  # the default
    html = client.get(url, headers={**h, "Accept": "text/html,application/pdf;q=0.5"})
    assert html.headers["content-type"].startswith("text/html")
    assert "巡检周报" in html.text
    assert client.get(url + ".pdf", headers=h).content.startswith(b"%PDF")
    assert client.get(url + ".html", headers=h).text.startswith("<!DOCTYPE html>")
    listed = client.get("/api/v1/reports", params={"site": SITE}, headers=h).json()
    assert listed["total"] == 1
    assert listed["items"][0]["period"] == "2026-W47"
    assert listed["items"][0]["links"]["pdf"] == url + ".pdf"
    assert client.get(url).status_code == 401
    assert client.get(url + ".pdf", headers=make_token("guard")).status_code == 403


def test_another_sites_report_is_not_found(conn: Conn, client: TestClient,
                                           make_token: Token, report_id: int) -> None:
    conn.execute("INSERT INTO sites (id, name) VALUES ('other', 'Other')")
    conn.commit()
    other = make_token("supervisor", site="other")
    for suffix in ("", ".pdf", ".html"):
        r = client.get(f"/api/v1/reports/{report_id}{suffix}", headers=other)
        assert r.status_code == 404, suffix
    assert client.get("/api/v1/reports", headers=other).json()["total"] == 0
    assert client.get("/api/v1/reports", params={"site": SITE},
                      headers=other).status_code == 403
    assert client.get("/api/v1/reports/999999", headers=make_token("admin")).status_code == 404
