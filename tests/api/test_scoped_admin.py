"""An admin token limited to one site administers that site only; shared objects need a
token for every site."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

API = "/api/v1"


def test_a_site_admin_cannot_create_sites_or_change_device_types(
        client: TestClient, admin: dict[str, str],
        make_token: Callable[..., dict[str, str]]) -> None:
    for site in ("a", "b"):
        assert client.post(f"{API}/sites", json={"id": site, "name": site},
                           headers=admin).status_code == 201
    assert client.post(f"{API}/device-types", json={"id": "pump", "name": "Pump"},
                       headers=admin).status_code == 201
    site_admin = make_token("admin", site="a")

    r = client.post(f"{API}/sites", json={"id": "c", "name": "C"}, headers=site_admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.post(f"{API}/device-types", json={"id": "lift", "name": "Lift"},
                       headers=site_admin).status_code == 403
    assert client.patch(f"{API}/device-types/pump", json={"name": "Renamed"},
                        headers=site_admin).status_code == 403
    assert client.get(f"{API}/device-types/pump", headers=admin).json()["name"] == "Pump"

    # Its own site it administers; another site it cannot touch.
    assert client.patch(f"{API}/sites/a", json={"name": "A2"},
                        headers=site_admin).status_code == 200
    assert client.patch(f"{API}/sites/b", json={"name": "B2"},
                        headers=site_admin).status_code == 404
    assert client.post(f"{API}/zones", json={"site_id": "a", "id": "z", "name": "Z"},
                       headers=site_admin).status_code == 201
    assert client.post(f"{API}/zones", json={"site_id": "b", "id": "z", "name": "Z"},
                       headers=site_admin).status_code == 403
    assert [s["id"] for s in client.get(f"{API}/sites", headers=site_admin).json()["items"]
            ] == ["a"]
    # Reading the shared device types is fine.
    assert client.get(f"{API}/device-types", headers=site_admin).status_code == 200
