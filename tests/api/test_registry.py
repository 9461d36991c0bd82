"""Registry endpoints: list (filters, paging), get, create, update, under roles and scoping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.site_config import example_document
from stack.app import load_site

Headers = dict[str, str]
MakeToken = Callable[..., Headers]


@pytest.fixture
def riverside(database: str, api_clock: Any) -> None:
    """The example site plus a second, small site `hilltop`."""
    with psycopg.connect(database) as conn:
        load_site(conn, {k: v for k, v in example_document().items()
                                if k in ("site", "zones", "device_types", "devices", "guards",
                                         "checkpoints")}, now=api_clock())
        load_site(conn, {
            "site": {"id": "hilltop", "name": "Hilltop Towers", "timezone": "Asia/Shanghai"},
            "zones": [{"id": "lobby", "name": "Lobby"}],
            "devices": [{"id": "pump-1", "name": "Hilltop pump", "type": "water_pump",
                         "zone": "lobby"}],
            "guards": [{"id": "g-ma", "name": "Ma Jun"}],
            "checkpoints": [{"id": "cp-lobby", "name": "Lobby", "tag": "NFC-HT-1"}],
        }, now=api_clock())


def test_bad_or_missing_token_gets_401(client: TestClient) -> None:
    r = client.get("/api/v1/devices", headers={"Authorization": "Bearer ct_not-a-token"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/sites").status_code == 401
    assert client.post("/api/v1/devices", json={}).status_code == 401


@pytest.mark.usefixtures("riverside")
def test_list_with_filters_and_paging(client: TestClient, make_token: MakeToken) -> None:
    viewer = make_token("viewer")
    r = client.get("/api/v1/devices?site=riverside&type=water_pump", headers=viewer)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 3 and body["limit"] == 100 and body["offset"] == 0
    assert [d["id"] for d in body["items"]] == ["pump-1", "pump-2", "pump-3"]

    page = client.get("/api/v1/devices?site=riverside&limit=5&offset=15", headers=viewer).json()
    assert page["total"] == 21 and len(page["items"]) == 5 and page["offset"] == 15
    everything = client.get("/api/v1/devices", headers=viewer).json()
    assert everything["total"] == 22  # both sites

    eq = client.get("/api/v1/checkpoints?site=riverside&kind=equipment", headers=viewer).json()
    assert eq["total"] == 6 and eq["items"][0]["checklist"]
    assert client.get("/api/v1/zones?site=riverside&kind=plant",
                      headers=viewer).json()["total"] == 5
    assert client.get("/api/v1/guards?site=riverside", headers=viewer).json()["total"] == 4
    assert client.get("/api/v1/device-types", headers=viewer).json()["total"] == 9
    assert client.get("/api/v1/sites", headers=viewer).json()["total"] == 2
    assert client.get("/api/v1/devices?limit=0", headers=viewer).status_code == 422


@pytest.mark.usefixtures("riverside")
def test_get_one_record(client: TestClient, admin: Headers) -> None:
    r = client.get("/api/v1/devices/riverside/pump-1", headers=admin)
    assert r.status_code == 200
    assert r.json()["type_id"] == "water_pump" and r.json()["zone_id"] == "pump-room"
    site = client.get("/api/v1/sites/riverside", headers=admin).json()
    assert site["timezone"] == "Asia/Shanghai"
    cp = client.get("/api/v1/checkpoints/riverside/ecp-pump-1", headers=admin).json()
    assert cp["device_id"] == "pump-1" and cp["kind"] == "equipment"
    missing = client.get("/api/v1/devices/riverside/nope", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_admin_creates_a_site_and_its_registry(client: TestClient, admin: Headers) -> None:
    r = client.post("/api/v1/sites", headers=admin,
                    json={"id": "bayview", "name": "Bayview", "timezone": "Europe/Berlin"})
    assert r.status_code == 201 and r.json()["auto_registered"] is False
    assert client.post("/api/v1/zones", headers=admin,
                       json={"site_id": "bayview", "id": "b1", "name": "B1"}).status_code == 201
    assert client.post("/api/v1/device-types", headers=admin,
                       json={"id": "boiler", "name": "Boiler",
                             "metrics": {"temp": {"unit": "degC"}}}).status_code == 201
    d = client.post("/api/v1/devices", headers=admin,
                    json={"site_id": "bayview", "id": "boiler-1", "name": "Boiler 1",
                          "type_id": "boiler", "zone_id": "b1"})
    assert d.status_code == 201 and d.json()["status"] == "active" and d.json()["online"] is None
    g = client.post("/api/v1/guards", headers=admin,
                    json={"site_id": "bayview", "id": "g1", "name": "Guard One"})
    assert g.status_code == 201
    c = client.post("/api/v1/checkpoints", headers=admin,
                    json={"site_id": "bayview", "id": "ecp-boiler", "name": "Boiler check",
                          "tag": "QR-1", "kind": "equipment", "device_id": "boiler-1",
                          "checklist": [{"item": "temp", "reading": "temp", "max": 90}]})
    assert c.status_code == 201 and c.json()["checklist"][0]["max"] == 90


@pytest.mark.usefixtures("riverside")
def test_create_refusals(client: TestClient, admin: Headers) -> None:
    dup = client.post("/api/v1/devices", headers=admin,
                      json={"site_id": "riverside", "id": "pump-1", "name": "again"})
    assert dup.status_code == 409 and "exists already" in dup.json()["error"]["message"]
    tag = client.post("/api/v1/checkpoints", headers=admin,
                      json={"site_id": "riverside", "id": "cp-new", "name": "n",
                            "tag": "NFC-RS-0001"})
    assert tag.status_code == 409 and "NFC-RS-0001" in tag.json()["error"]["message"]
    ref = client.post("/api/v1/devices", headers=admin,
                      json={"site_id": "riverside", "id": "pump-9", "name": "p",
                            "zone_id": "no-such-zone"})
    assert ref.status_code == 422
    bad = client.post("/api/v1/devices", headers=admin,
                      json={"site_id": "riverside", "id": "bad id!", "name": "p"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"][-1] == "id"
    tz = client.post("/api/v1/sites", headers=admin,
                     json={"id": "x", "name": "x", "timezone": "Nowhere/City"})
    assert tz.status_code == 422


@pytest.mark.usefixtures("riverside")
def test_update(client: TestClient, make_token: MakeToken, api_clock: Any) -> None:
    engineer = make_token("engineer", site="riverside")
    api_clock.advance(hours=1)
    r = client.patch("/api/v1/devices/riverside/pump-3", headers=engineer,
                     json={"status": "retired", "overrides": {"pump-vibration": {"threshold": 7}}})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "retired" and body["overrides"]["pump-vibration"]["threshold"] == 7
    assert body["name"] == "Booster pump 3 (standby) 生活泵3#"  # untouched
    assert body["updated_at"].startswith("2026-11-23T09:00")
    null = client.patch("/api/v1/devices/riverside/pump-3", headers=engineer, json={"name": None})
    assert null.status_code == 422
    supervisor = make_token("supervisor", site="riverside")
    g = client.patch("/api/v1/guards/riverside/g-li", headers=supervisor, json={"active": False})
    assert g.status_code == 200 and g.json()["active"] is False
    assert client.patch("/api/v1/guards/riverside/g-nobody", headers=supervisor,
                        json={"active": False}).status_code == 404


@pytest.mark.usefixtures("riverside")
def test_roles(client: TestClient, make_token: MakeToken) -> None:
    guard = make_token("guard", site="riverside", guard="g-li")
    new_device = {"site_id": "riverside", "id": "pump-4", "name": "Pump 4"}
    r = client.post("/api/v1/devices", headers=guard, json=new_device)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/devices?site=riverside", headers=guard).status_code == 200
    viewer = make_token("viewer")
    assert client.patch("/api/v1/devices/riverside/pump-1", headers=viewer,
                        json={"name": "x"}).status_code == 403
    engineer = make_token("engineer")
    assert client.post("/api/v1/devices", headers=engineer, json=new_device).status_code == 403
    assert client.patch("/api/v1/guards/riverside/g-li", headers=engineer,
                        json={"post": "x"}).status_code == 403
    supervisor = make_token("supervisor", site="riverside")
    assert client.post("/api/v1/devices", headers=supervisor, json=new_device).status_code == 201
    assert client.post("/api/v1/sites", headers=supervisor,
                       json={"id": "s2", "name": "x"}).status_code == 403
    assert client.post("/api/v1/device-types", headers=supervisor,
                       json={"id": "t2", "name": "x"}).status_code == 403


@pytest.mark.usefixtures("riverside")
def test_site_scoped_token_cannot_read_another_site(client: TestClient,
                                                    make_token: MakeToken) -> None:
    hilltop = make_token("supervisor", site="hilltop")
    # asking for another site: 403
    r = client.get("/api/v1/devices?site=riverside", headers=hilltop)
    assert r.status_code == 403
    for resource in ("zones", "guards", "checkpoints"):
        assert client.get(f"/api/v1/{resource}?site=riverside", headers=hilltop).status_code == 403
    # listing without a site: only its own site's rows, scoped in the query
    devices = client.get("/api/v1/devices", headers=hilltop).json()
    assert devices["total"] == 1 and devices["items"][0]["site_id"] == "hilltop"
    sites = client.get("/api/v1/sites", headers=hilltop).json()
    assert [s["id"] for s in sites["items"]] == ["hilltop"]
    # a record of another site: 404, as if it did not exist
    for path in ("sites/riverside", "devices/riverside/pump-1", "zones/riverside/roof",
                 "guards/riverside/g-li", "checkpoints/riverside/cp-gate-main"):
        assert client.get(f"/api/v1/{path}", headers=hilltop).status_code == 404, path
    assert client.get("/api/v1/devices/hilltop/pump-1", headers=hilltop).status_code == 200
    # writing into another site: refused
    assert client.post("/api/v1/devices", headers=hilltop,
                       json={"site_id": "riverside", "id": "x", "name": "x"}).status_code == 403
    assert client.patch("/api/v1/devices/riverside/pump-1", headers=hilltop,
                        json={"name": "mine now"}).status_code == 404
    assert client.patch("/api/v1/sites/riverside", headers=hilltop,
                        json={"name": "mine"}).status_code == 404
    assert client.patch("/api/v1/sites/hilltop", headers=hilltop,
                        json={"address": "1 Hill Rd"}).json()["address"] == "1 Hill Rd"
