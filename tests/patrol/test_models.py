"""Routes and schedules as typed models: the site file and the API refuse the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from caretaker.site_config import SiteConfigError, parse
from stack.app import SECTIONS
from tests.patrol.helpers import site_doc

Headers = Callable[..., dict[str, str]]

BAD_ROUTES = [
    ({"steps": [{"checkpoint": "a", "offset": 1e20}]}, "steps[0].offset: 1e+20 is not between"),
    ({"steps": [{"checkpoint": "a", "offset": "10 parsecs"}]}, "steps[0].offset: '10 parsecs'"),
    ({"steps": [{"checkpoint": "a", "tolerance": -1}]}, "steps[0].tolerance: -1 is not"),
    ({"steps": []}, "steps: Tuple should have at least 1 item"),
    ({"steps": ["a", "a"]}, "a checkpoint appears twice: a"),
    ({"steps": [{"checkpoint": "a", "offset": "10m"}, {"checkpoint": "b", "offset": "5m"}]},
     "ordered steps need non-decreasing offsets"),
    ({"steps": ["a"], "grace": "soon"}, "grace: 'soon' is not a duration"),
    ({"steps": ["a"], "speed": 3}, "speed: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_ROUTES)
def test_bad_route_in_the_site_file_is_named_by_its_path(change: dict[str, Any],
                                                          expected: str) -> None:
    doc = site_doc()
    doc["routes"][1] = {"id": "x", **change}
    with pytest.raises(SiteConfigError) as err:
        parse(doc, SECTIONS)
    assert f"routes[1].{expected}" in str(err.value) or f"routes[1]: {expected}" in str(err.value)


@pytest.mark.parametrize(("change", "expected"), BAD_ROUTES)
def test_bad_route_over_http_is_422_with_the_same_message(
        client: TestClient, load: Callable[..., None], make_token: Headers,
        change: dict[str, Any], expected: str) -> None:
    load()
    r = client.post("/api/v1/routes", json={"site_id": "t1", "id": "x", "name": "X", **change},
                    headers=make_token("supervisor", site="t1"))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    said = error["message"] + " " + " ".join(
        ".".join(str(p) for p in d["loc"]) + ": " + d["msg"] for d in error["details"] or [])
    assert expected.split(": ", 1)[-1] in said


def test_route_step_offset_of_1e20_is_422_on_create_and_change(
        client: TestClient, load: Callable[..., None], make_token: Headers) -> None:
    load()
    sup = make_token("supervisor", site="t1")
    steps = [{"checkpoint": "a", "offset": 1e20}]
    r = client.post("/api/v1/routes", json={"site_id": "t1", "id": "x", "name": "X",
                                            "steps": steps}, headers=sup)
    assert r.status_code == 422
    assert client.patch("/api/v1/routes/t1/r", json={"steps": steps},
                        headers=sup).status_code == 422
    assert client.patch("/api/v1/routes/t1/r", json={"min_duration": "1e20"},
                        headers=sup).status_code == 422
    assert client.patch("/api/v1/routes/t1/r", json={"name": None},
                        headers=sup).status_code == 422
    assert client.get("/api/v1/routes/t1/r", headers=sup).json()["steps"][0]["offset"] == "0s"


BAD_SCHEDULES = [
    ({"kind": "every", "every": "30s"}, "every must be at least 1m"),
    ({"kind": "daily"}, "kind daily needs at"),
    ({"kind": "daily", "at": ["25:00"]}, "'25:00' is not a time like 22:00"),
    ({"kind": "weekly", "at": ["09:00"]}, "weekly needs weekdays"),
    ({"kind": "weekly", "at": ["09:00"], "weekdays": ["someday"]}, "weekday 'someday'"),
    ({"kind": "monthly", "at": ["09:00"], "monthly": {"day": 40}},
     "monthly day must be 1..31 or -1"),
    ({"kind": "daily", "at": ["09:00"], "post": "night"}, "exactly one of guard or post"),
    ({"kind": "every", "every": 1e20}, "every: 1e+20 is not between"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_SCHEDULES)
def test_bad_schedule_refused_by_file_and_api_alike(
        client: TestClient, load: Callable[..., None], make_token: Headers,
        change: dict[str, Any], expected: str) -> None:
    spec = {"id": "x", "route": "r", "guard": "g1", "effective_from": "2026-11-23", **change}
    with pytest.raises(SiteConfigError) as err:
        parse(site_doc(schedules=[spec]), SECTIONS)
    assert "schedules[0]" in str(err.value) and expected in str(err.value)
    load()
    r = client.post("/api/v1/schedules", json={"site_id": "t1", **spec},
                    headers=make_token("supervisor", site="t1"))
    assert r.status_code == 422, r.text
    assert expected.removeprefix("every: ") in str(r.json()["error"])


@pytest.mark.parametrize("path", [
    "/api/v1/routes?site=t%001", "/api/v1/schedules?route=r%00", "/api/v1/schedules?guard=%00",
    "/api/v1/routes/t1/r%00", "/api/v1/schedules/t%001/s",
    "/api/v1/routes?limit=99999999999999999999999",
])
def test_patrol_query_and_path_parameters_are_validated(client: TestClient,
                                                        conn: psycopg.Connection[Any],
                                                        admin: dict[str, str],
                                                        path: str) -> None:
    assert client.get(path, headers=admin).status_code == 422


def test_route_and_schedule_text_with_a_nul_byte_is_422(
        client: TestClient, load: Callable[..., None], make_token: Headers) -> None:
    load()
    sup = make_token("supervisor", site="t1")
    r = client.post("/api/v1/routes", json={"site_id": "t1", "id": "x", "name": "a\x00",
                                            "steps": ["a"]}, headers=sup)
    assert r.status_code == 422
    r = client.post("/api/v1/schedules", json={
        "site_id": "t1", "id": "x", "route": "r", "post": "n\x00", "kind": "daily",
        "at": ["09:00"], "effective_from": "2026-11-23"}, headers=sup)
    assert r.status_code == 422
    assert client.patch("/api/v1/schedules/t1/s", json={"post": "\x00"},
                        headers=sup).status_code == 422
