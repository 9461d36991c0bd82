"""Attachments through the real API: type by content, size limits, scope, byte-exact bytes."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from tests.tickets.test_follow_ups import OTHER, SITE, Tokens, complaint, make_sites, work_order
from tickets.attachments import clean_filename, content_type, sniff

API = "/api/v1"
MB = 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(2000)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(500)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + os.urandom(300)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def upload(client: TestClient, headers: dict[str, str], path: str, data: bytes, *,
           name: str = "tap.jpg", declared: str = "image/jpeg",
           phase: str | None = "before") -> Any:
    form = {"phase": phase} if phase is not None else {}
    return client.post(f"{API}/{path}/attachments", files={"file": (name, data, declared)},
                       data=form, headers=headers)


def test_types_are_read_from_the_content() -> None:
    assert (sniff(JPEG), sniff(PNG), sniff(WEBP)) == ("image/jpeg", "image/png", "image/webp")
    assert sniff(PDF) is None and sniff(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert sniff(b"") is None and sniff(b"GIF89a") is None
    assert content_type(PNG, "application/octet-stream") == "image/png"
    assert content_type(JPEG, None) == "image/jpeg"
    assert content_type(JPEG, "image/jpg") == "image/jpeg"
    with pytest.raises(ValueError, match="declared as image/png but its content is image/jpeg"):
        content_type(JPEG, "image/png")
    assert clean_filename("../../etc/pass\"wd\x00.jpg", "image/jpeg") == "pass_wd_.jpg"
    assert clean_filename("C:\\photos\\厨房.jpg", "image/jpeg") == "厨房.jpg"
    assert clean_filename("", "image/png") == "photo.png"


def test_photos_round_trip_byte_exact_in_scope(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    wo = work_order(conn, api_clock(), state="in_progress")
    eng = make_token("engineer", site=SITE)
    r = upload(client, eng, f"work-orders/{wo}", JPEG, name="厨房 before.jpg")
    assert r.status_code == 201, r.text
    before = r.json()
    assert (before["phase"], before["content_type"], before["size"]) == (
        "before", "image/jpeg", len(JPEG))
    assert before["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert before["work_order_id"] == wo and before["uploaded_by"] == "engineer@rs"
    r = upload(client, make_token("frontdesk"), f"work-orders/{wo}", PNG, name="after.png",
               declared="application/octet-stream", phase="after")
    assert r.status_code == 201 and r.json()["content_type"] == "image/png"
    r = upload(client, make_token("supervisor"), f"work-orders/{wo}", WEBP, name="x.webp",
               declared="image/webp", phase="other")
    assert r.status_code == 201

    # Listed with the ticket (no bytes), served back byte for byte to its readers.
    viewer = make_token("viewer", site=SITE)
    listed = client.get(f"{API}/work-orders/{wo}/attachments", headers=viewer).json()
    assert [a["phase"] for a in listed["items"]] == ["before", "after", "other"]
    assert "data" not in listed["items"][0]
    got = client.get(f"{API}/attachments/{before['id']}", headers=viewer)
    assert got.status_code == 200 and got.content == JPEG
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "filename*=UTF-8''%E5%8E%A8%E6%88%BF%20before.jpg" in \
        got.headers["content-disposition"]
    png = client.get(f"{API}/attachments/{listed['items'][1]['id']}", headers=viewer)
    assert png.content == PNG and png.headers["content-type"] == "image/png"

    # Outside the ticket's site: not found, whether listed, fetched or uploaded to.
    stranger = make_token("supervisor", site=OTHER)
    assert client.get(f"{API}/attachments/{before['id']}", headers=stranger).status_code == 404
    assert client.get(f"{API}/work-orders/{wo}/attachments",
                      headers=stranger).status_code == 404
    assert upload(client, stranger, f"work-orders/{wo}", JPEG).status_code == 404
    assert client.get(f"{API}/attachments/{before['id']}").status_code == 401
    assert client.get(f"{API}/attachments/999999", headers=viewer).status_code == 404
    # Readers may look; only those who handle tickets attach.
    for role in ("guard", "viewer"):
        assert upload(client, make_token(role), f"work-orders/{wo}", JPEG).status_code == 403


def test_complaints_take_photos_too(conn: psycopg.Connection, client: TestClient,
                                    make_token: Tokens, api_clock: FakeClock) -> None:
    make_sites(conn)
    cid = complaint(conn, api_clock(), answered=False)
    desk = make_token("frontdesk", site=SITE)
    r = upload(client, desk, f"complaints/{cid}", JPEG, name="stairwell.jpg")
    assert r.status_code == 201 and r.json()["complaint_id"] == cid
    assert r.json()["work_order_id"] is None
    listed = client.get(f"{API}/complaints/{cid}/attachments", headers=desk).json()
    assert listed["total"] == 1
    assert client.get(f"{API}/attachments/{r.json()['id']}", headers=desk).content == JPEG
    assert upload(client, desk, "complaints/424242", JPEG).status_code == 404
    assert client.get(f"{API}/complaints/{cid}/attachments",
                      headers=make_token("viewer", site=OTHER)).status_code == 404


def test_wrong_types_are_refused_with_422(conn: psycopg.Connection, client: TestClient,
                                          make_token: Tokens, api_clock: FakeClock) -> None:
    make_sites(conn)
    wo = work_order(conn, api_clock())
    eng = make_token("engineer")
    path = f"work-orders/{wo}"
    for data, name, declared in ((PDF, "quote.pdf", "application/pdf"),
                                 (PDF, "photo.jpg", "image/jpeg"),  # a lying type
                                 (b"<svg onload=alert(1)>", "x.svg", "image/svg+xml"),
                                 (b"GIF89a" + os.urandom(100), "x.gif", "image/gif"),
                                 (JPEG, "x.png", "image/png"),  # declared one, is another
                                 (b"MZ\x90\x00" + os.urandom(100), "a.jpg", "image/jpeg")):
        r = upload(client, eng, path, data, name=name, declared=declared)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["code"] == "unsupported_type"
    assert upload(client, eng, path, b"", name="empty.jpg").status_code == 422
    assert upload(client, eng, path, JPEG, phase=None).status_code == 422
    assert upload(client, eng, path, JPEG, phase="during").status_code == 422
    r = client.post(f"{API}/{path}/attachments", data={"phase": "before"}, headers=eng)
    assert r.status_code == 422  # no file
    assert client.get(f"{API}/{path}/attachments", headers=eng).json()["total"] == 0


def test_size_limits_let_photos_through_on_upload_routes_only(
        conn: psycopg.Connection, client: TestClient, make_token: Tokens,
        api_clock: FakeClock) -> None:
    make_sites(conn)
    wo = work_order(conn, api_clock())
    eng = make_token("engineer")
    path = f"work-orders/{wo}"
    # Larger than the API's 1 MB body limit, within the 10 MB attachment setting.
    big = JPEG[:16] + os.urandom(3 * MB)
    r = upload(client, eng, path, big)
    assert r.status_code == 201 and r.json()["size"] == len(big)
    got = client.get(f"{API}/attachments/{r.json()['id']}", headers=eng)
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(big).hexdigest()
    exact = JPEG[:16] + bytes(10 * MB - 16)
    assert upload(client, eng, path, exact).status_code == 201
    # One byte over the setting: refused by the route; far over: by the body limit.
    r = upload(client, eng, path, exact + b"\x00")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = upload(client, eng, path, exact + os.urandom(2 * MB))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert client.get(f"{API}/{path}/attachments", headers=eng).json()["total"] == 2
    # Every other route keeps the 1 MB body limit, the follow-up one included.
    r = client.post(f"{API}/{path}/follow-ups", headers=eng,
                    json={"outcome": "unreachable", "channel": "phone",
                          "opinion": "x" * (2 * MB)})
    assert r.status_code == 413
    r = client.put(f"{API}/{path}/attachments", content=bytes(2 * MB), headers=eng)
    assert r.status_code == 413
