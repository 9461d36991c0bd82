"""The phone page through the real app: the shell after login, its manifest and service
worker, today's picture, a field role's shift-long session, and a hazard's photo sent after
its scan (waiting for the ticket, attached once however often it is sent)."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import segno
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from caretaker.clock import FakeClock
from caretaker.users import create_user
from rules.patrol import engine
from tests.api.test_logins import login
from tests.mobile.seed import GUARD, PASSWORD, SITE, USER, seed

API = "/api/v1"


@pytest.fixture
def estate(database: str, api_clock: FakeClock) -> dict[str, int]:
    with psycopg.connect(database, row_factory=dict_row) as conn:
        runs = seed(conn, api_clock())
        create_user(conn, "sam", PASSWORD, role="supervisor", site_id=SITE)
        create_user(conn, "li", PASSWORD, role="guard", site_id=SITE, guard_id="g-li")
        conn.commit()
    return runs


def _csrf(client: TestClient) -> str:
    page = client.get("/m/")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found
    return found.group(1)


def test_the_shell_after_the_same_login_as_the_console(client: TestClient,
                                                        estate: dict[str, int]) -> None:
    away = client.get("/m/", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/login?next=%2Fm%2F"
    assert client.get("/m/today.json").status_code == 401
    assert login(client, USER, PASSWORD, next_="/m/").headers["location"] == "/m/"
    # A guard who logs in at the root lands on the phone page; others on the console.
    assert login(TestClient(client.app), USER, PASSWORD).headers["location"] == "/m/"
    assert login(TestClient(client.app), "sam", PASSWORD).headers["location"] == "/"
    page = client.get("/m/")
    assert page.status_code == 200
    assert '<input id="tag" name="tag"' in page.text
    assert re.search(r'<button type="submit">[^<]+</button>', page.text)
    assert '<link rel="manifest" href="/m/manifest.webmanifest">' in page.text
    assert 'data-guard="g-zhang"' in page.text and 'lang="zh-CN"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' blob:" in policy
    assert page.headers["x-frame-options"] == "DENY"
    english = client.get("/m/?lang=en")
    assert "Scan a checkpoint" in english.text and "Waiting to send" in english.text


def test_manifest_and_service_worker(client: TestClient) -> None:
    manifest = client.get("/m/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    body = manifest.json()
    assert body["start_url"] == "/m/" and body["scope"] == "/m/"
    assert body["display"] == "standalone"
    assert {i["sizes"] for i in body["icons"]} == {"192x192", "512x512"}
    for icon in body["icons"]:
        assert client.get(icon["src"]).headers["content-type"] == "image/png"
    worker = client.get("/m/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/m/"
    assert worker.headers["cache-control"] == "no-cache"
    assert "__VERSION__" not in worker.text and "__SHELL__" not in worker.text
    shell = re.search(r"const SHELL = (\[.*\]);", worker.text)
    assert shell
    for url in eval(shell.group(1)):  # noqa: S307 - a JSON list the server wrote
        assert client.get(url).status_code == 200, url


def test_today_is_the_guards_runs_checkpoints_and_scans(client: TestClient,
                                                        estate: dict[str, int],
                                                        api_clock: FakeClock) -> None:
    login(client, USER, PASSWORD)
    today = client.get("/m/today.json").json()
    assert today["guard"]["id"] == GUARD and today["site"]["id"] == SITE
    assert [r["id"] for r in today["runs"]] == [estate["equipment-daily"],
                                                 estate["night-perimeter"]]
    patrol = today["runs"][1]
    first = patrol["visits"][0]
    assert first["checkpoint_id"] == "cp-gate-main" and first["tag"] == "NFC-RS-0001"
    now_ms = int(api_clock().timestamp() * 1000)
    assert first["window_start"] <= now_ms <= first["window_end"]
    pump = next(c for c in today["checkpoints"] if c["id"] == "ecp-pump-1")
    assert pump["checklist"][0]["min"] == 0.3
    # Another guard sees none of these runs.
    other = TestClient(client.app)
    login(other, "li", PASSWORD)
    assert other.get("/m/today.json").json()["runs"] == []


def test_a_guards_session_lasts_a_shift(client: TestClient, estate: dict[str, int],
                                        api_clock: FakeClock) -> None:
    login(client, USER, PASSWORD)
    # A phone in a pocket for 3 h 50 min between rounds is still logged in ...
    for _ in range(3):
        api_clock.advance(hours=3, minutes=50)
        assert client.get("/m/today.json").status_code == 200
    # ... until 13 h after the login.
    api_clock.advance(hours=1, minutes=31)
    assert client.get("/m/today.json").status_code == 401
    login(client, USER, PASSWORD)
    api_clock.advance(hours=4, minutes=1)
    assert client.get("/m/today.json").status_code == 401
    # A supervisor keeps the console's 2 hours.
    login(client, "sam", PASSWORD)
    api_clock.advance(hours=2, minutes=1)
    assert client.get(f"{API}/sites").status_code == 401


def _png() -> bytes:
    out = io.BytesIO()
    segno.make("a photo").save(out, kind="png", scale=4)
    return out.getvalue()


def test_a_hazard_photo_goes_to_the_ticket_its_scan_opened(
        client: TestClient, estate: dict[str, int], database: str,
        api_clock: FakeClock) -> None:
    login(client, USER, PASSWORD)
    csrf = {"X-CSRF-Token": _csrf(client)}
    scan_id = str(uuid.uuid4())
    ts = int(api_clock().timestamp() * 1000)
    sent = client.post(f"{API}/scans", params={"site": SITE}, headers=csrf, json={
        "scan_id": scan_id, "tag": "NFC-RS-0010", "ts": ts, "result": "abnormal",
        "note": "天台门未锁 roof door unlocked"})
    assert sent.status_code == 202 and sent.json()["stored"] == 1
    photo = _png()
    url = f"{API}/scans/{scan_id}/photo"
    early = client.put(url, content=photo, headers={**csrf, "Content-Type": "image/png"})
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_yet"
    with psycopg.connect(database, row_factory=dict_row) as conn:
        engine.consume_scans(conn, api_clock())
        conn.commit()
    first = client.put(url, content=photo, headers={**csrf, "Content-Type": "image/png"})
    assert first.status_code == 201, first.text
    again = client.put(url, content=photo, headers={**csrf, "Content-Type": "image/png"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    wo = first.json()["work_order_id"]
    ticket = client.get(f"{API}/work-orders/{wo}").json()
    assert ticket["source"] == "patrol" and ticket["category"] == "整改"
    assert client.get(f"/api/v1/attachments/{first.json()['id']}").content == photo
    # Another guard's scan, a scan that reported nothing, no scan at all: refused.
    other = TestClient(client.app)
    login(other, "li", PASSWORD)
    other_csrf = {"X-CSRF-Token": _csrf(other)}
    assert other.put(url, content=photo, headers={**other_csrf, "Content-Type": "image/png"}
                     ).status_code == 404
    fine = str(uuid.uuid4())
    client.post(f"{API}/scans", params={"site": SITE}, headers=csrf, json={
        "scan_id": fine, "tag": "NFC-RS-0001", "ts": ts})
    with psycopg.connect(database, row_factory=dict_row) as conn:
        engine.consume_scans(conn, api_clock())
        conn.commit()
    nothing = client.put(f"{API}/scans/{fine}/photo", content=photo,
                         headers={**csrf, "Content-Type": "image/png"})
    assert nothing.status_code == 422
    assert client.put(f"{API}/scans/{uuid.uuid4()}/photo", content=photo,
                      headers={**csrf, "Content-Type": "image/png"}).status_code == 404


def test_a_photo_that_is_no_image_is_refused(client: TestClient, estate: dict[str, int],
                                             database: str, api_clock: FakeClock) -> None:
    login(client, USER, PASSWORD)
    csrf = {"X-CSRF-Token": _csrf(client)}
    scan_id = str(uuid.uuid4())
    client.post(f"{API}/scans", params={"site": SITE}, headers=csrf, json={
        "scan_id": scan_id, "tag": "NFC-RS-0010", "result": "abnormal", "note": "leak",
        "ts": int((api_clock() - timedelta(minutes=1)).timestamp() * 1000)})
    with psycopg.connect(database, row_factory=dict_row) as conn:
        engine.consume_scans(conn, datetime.now(UTC))
        conn.commit()
    url = f"{API}/scans/{scan_id}/photo"
    pdf = client.put(url, content=b"%PDF-1.4 not a photo",
                     headers={**csrf, "Content-Type": "application/octet-stream"})
    assert pdf.status_code == 422 and pdf.json()["error"]["code"] == "unsupported_type"
    empty = client.put(url, content=b"", headers={**csrf, "Content-Type": "image/png"})
    assert empty.status_code == 422
    no_csrf = client.put(url, content=_png(), headers={"Content-Type": "image/png"})
    assert no_csrf.status_code == 403


def test_a_supervisor_prints_the_sites_checkpoint_labels(client: TestClient,
                                                         estate: dict[str, int]) -> None:
    login(client, USER, PASSWORD)
    assert client.get("/m/labels").status_code == 403   # a guard does not print them
    supervisor = TestClient(client.app)
    login(supervisor, "sam", PASSWORD)
    sheet = supervisor.get("/m/labels")
    assert sheet.status_code == 200
    labels = re.findall(r'<li class="label" data-checkpoint="([^"]+)">\s*<svg', sheet.text)
    assert len(labels) == 17 and "ecp-pump-1" in labels
    assert "QR-RS-PUMP-1" in sheet.text and "Booster pump 1 inspection" in sheet.text
    assert "<script" not in sheet.text
