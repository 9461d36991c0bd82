"""Bad input answers 4xx with the one error shape: big bodies, NUL bytes, huge offsets, bad refs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caretaker.clock import FakeClock
from caretaker.settings import Settings
from stack.app import api as create_app

API = "/api/v1"


def _is_error(r: Any, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == status
    if code is not None:
        assert error["code"] == code


@pytest.fixture
def small_client(settings_env: dict[str, str], api_clock: FakeClock,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """An app that accepts bodies of at most 4 KiB."""
    monkeypatch.setenv("CARETAKER_API_MAX_BODY_BYTES", "4096")
    with TestClient(create_app(Settings(), clock=api_clock)) as c:
        yield c


def test_a_declared_body_over_the_limit_is_refused_with_413(
        small_client: TestClient, admin: dict[str, str]) -> None:
    body = b'{"id": "s1", "name": "' + b"x" * 10_000 + b'"}'
    r = small_client.post(f"{API}/sites", content=body,
                          headers={**admin, "Content-Type": "application/json"})
    _is_error(r, 413, "too_large")
    assert small_client.get(f"{API}/sites/s1", headers=admin).status_code == 404


def test_a_chunked_body_is_counted_and_cut_at_the_limit(
        small_client: TestClient, admin: dict[str, str]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "s1", "name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = small_client.post(f"{API}/sites", content=chunks(),
                          headers={**admin, "Content-Type": "application/json"})
    _is_error(r, 413, "too_large")
    assert small_client.get(f"{API}/sites/s1", headers=admin).status_code == 404
    # Under the limit, chunked or not, the body is read as usual.
    r = small_client.post(f"{API}/sites", content=iter([b'{"id": "s1", ', b'"name": "S"}']),
                          headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_a_nul_byte_in_a_path_or_filter_is_422(client: TestClient,
                                               admin: dict[str, str]) -> None:
    _is_error(client.get(f"{API}/sites/a%00b", headers=admin), 422)
    _is_error(client.get(f"{API}/devices", params={"site": "a\x00b"}, headers=admin), 422)
    _is_error(client.get(f"{API}/work-orders", params={"assignee": "x\x00"}, headers=admin),
              422)


def test_a_nul_byte_in_a_body_is_422(client: TestClient, admin: dict[str, str]) -> None:
    _is_error(client.post(f"{API}/sites", json={"id": "s1", "name": "a\x00b"}, headers=admin),
              422)
    assert client.get(f"{API}/sites/s1", headers=admin).status_code == 404


def _list_routes(client: TestClient) -> list[str]:
    spec = client.get(f"{API}/openapi.json").json()
    return [path for path, ops in spec["paths"].items()
            if "get" in ops and any(p["name"] == "offset" for p in ops["get"].get("parameters", [])
                                    if p["in"] == "query")]


def test_an_offset_past_any_list_is_422_on_every_list_route(
        client: TestClient, admin: dict[str, str]) -> None:
    routes = _list_routes(client)
    assert f"{API}/work-orders" in routes and f"{API}/devices" in routes
    for path in routes:
        for offset in (2**63, 10**20, -1):
            r = client.get(path, params={"offset": offset, "site": "s1"}, headers=admin)
            assert r.status_code == 422, (path, offset, r.text)
            assert r.json()["error"]["code"] == "invalid"
        r = client.get(path, params={"limit": 10**12}, headers=admin)
        assert r.status_code == 422, (path, r.text)


def test_a_reference_to_an_unknown_site_is_422_not_500(
        client: TestClient, admin: dict[str, str]) -> None:
    _is_error(client.post(f"{API}/zones", json={"site_id": "nowhere", "id": "z", "name": "Z"},
                          headers=admin), 422)
    r = client.post(f"{API}/maintenance-windows", headers=admin, json={
        "site_id": "nowhere", "id": "w1", "starts_at": "2026-11-24T09:00:00+08:00",
        "ends_at": "2026-11-24T12:00:00+08:00"})
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()["error"]) == {"status", "code", "message", "details"}


def test_a_duplicate_is_409(client: TestClient, admin: dict[str, str]) -> None:
    site = {"id": "s1", "name": "S"}
    assert client.post(f"{API}/sites", json=site, headers=admin).status_code == 201
    _is_error(client.post(f"{API}/sites", json=site, headers=admin), 409, "conflict")


def test_huge_ids_in_paths_are_not_found(client: TestClient,
                                         make_token: Callable[..., dict[str, str]]) -> None:
    admin = make_token("admin")
    for path in ("work-orders", "alarms", "runs"):
        r = client.get(f"{API}/{path}/{2**70}", headers=admin)
        assert r.status_code in (404, 422), (path, r.text)


def test_numbers_for_times_are_refused(client: TestClient, admin: dict[str, str]) -> None:
    for path in ("alarms", "work-orders", "runs", "gaps"):
        _is_error(client.get(f"{API}/{path}", params={"since": "0.5"}, headers=admin), 422)
        _is_error(client.get(f"{API}/{path}", params={"until": "1700000000"}, headers=admin),
                  422)
        assert client.get(f"{API}/{path}", params={"since": "2026-11-23T08:00:00Z"},
                          headers=admin).status_code == 200


def test_a_405_names_every_method_of_the_path(client: TestClient,
                                              admin: dict[str, str]) -> None:
    r = client.request("OPTIONS", f"{API}/sites/s1", headers=admin)
    _is_error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PATCH"}
    r = client.delete(f"{API}/checkpoints", headers=admin)
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_loosely_written_values_are_refused(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(f"{API}/sites", json={"id": "s1", "name": "S"},
                       headers=admin).status_code == 201
    _is_error(client.post(f"{API}/guards", json={"site_id": "s1", "id": "g", "name": "G",
                                                 "active": 0}, headers=admin), 422)
    for value in ("+0.0", "1e2", "0x10", " 5"):
        _is_error(client.get(f"{API}/guards", params={"offset": value}, headers=admin), 422)
    assert client.get(f"{API}/guards", params={"offset": "0", "limit": "5"},
                      headers=admin).status_code == 200
