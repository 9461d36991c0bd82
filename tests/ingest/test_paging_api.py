"""Cursor paging through the API: scans, device status history and dead letters walk every
row once in the offset pages' order; bad cursors are a 422; totals say whether exact."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _walk(client: TestClient, path: str, params: dict[str, Any], headers: dict[str, str],
          key: str) -> list[Any]:
    """Every item's `key` following next_cursor from the first page."""
    seen: list[Any] = []
    cursor = None
    for _ in range(200):
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})},
                       headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total_exact"] is True
        seen += [_key(i, key) for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("next_cursor never ran out")


def _offset_order(client: TestClient, path: str, params: dict[str, Any],
                  headers: dict[str, str], key: str) -> list[Any]:
    body = client.get(path, params={**params, "limit": 1000}, headers=headers).json()
    return [_key(i, key) for i in body["items"]]


def _key(item: dict[str, Any], key: str) -> tuple[Any, ...]:
    return tuple(item[k] for k in key.split(","))


def _seed(database: str) -> None:
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'S1'), ('s2', 'S2')")
        conn.execute("INSERT INTO guards (site_id, id, name) VALUES ('s1', 'g1', 'G1'),"
                     " ('s2', 'g2', 'G2')")
        for i in range(23):  # pairs of scans share a time: the scan_id breaks the tie
            for site, guard in (("s1", "g1"), ("s2", "g2")):
                conn.execute(
                    "INSERT INTO scans (time, scan_id, site_id, guard_id, tag, result,"
                    " received_at) VALUES (%s, %s, %s, %s, 'T', 'ok', %s)",
                    (NOW - timedelta(minutes=i // 2), uuid.uuid4(), site, guard, NOW))
        for i in range(17):
            conn.execute("INSERT INTO device_status (time, site_id, device_id, status, source)"
                         " VALUES (%s, 's1', %s, %s, 'status')",
                         (NOW - timedelta(minutes=i // 3), f"d{i % 3}",
                          "online" if i % 2 else "offline"))
        conn.execute("INSERT INTO device_status (time, site_id, device_id, status, source)"
                     " VALUES (%s, 's2', 'x', 'offline', 'lwt')", (NOW,))
        for i in range(19):
            conn.execute("INSERT INTO dead_letters (received_at, last_received_at, source,"
                         " topic, payload, reason) VALUES (%s, %s, 'mqtt', %s, %s, 'bad')",
                         (NOW, NOW - timedelta(seconds=i // 4),
                          f"caretaker/v1/s{1 + i % 2}/devices/d/telemetry", f"x{i}".encode()))


def test_cursor_pages_walk_every_row_once_in_order(client: TestClient, database: str,
                                                   make_token: Callable[..., dict[str, str]]
                                                   ) -> None:
    _seed(database)
    viewer, engineer = make_token("viewer"), make_token("engineer")
    lists = [("/api/v1/scans", {"site": "s1"}, viewer, "scan_id", 23),
             ("/api/v1/scans", {}, viewer, "scan_id", 46),
             ("/api/v1/device-status", {"site": "s1"}, viewer, "time,device_id,status", 17),
             ("/api/v1/device-status", {"site": "s1", "status": "offline"}, viewer,
              "time,device_id", 9),
             ("/api/v1/dead-letters", {}, engineer, "id", 19),
             ("/api/v1/dead-letters", {"site": "s2"}, engineer, "id", 9)]
    for path, params, headers, key, n in lists:
        expected = _offset_order(client, path, params, headers, key)
        assert len(expected) == n, (path, params)
        for limit in (1, 4, 50):
            walked = _walk(client, path, {**params, "limit": limit}, headers, key)
            assert walked == expected, (path, params, limit)
    statuses = client.get("/api/v1/device-status", params={"site": "s1", "device": "d1",
                                                           "limit": 2}, headers=viewer).json()
    assert statuses["total"] == 6 and statuses["total_exact"] is True
    assert [i["device_id"] for i in statuses["items"]] == ["d1", "d1"]
    assert statuses["items"][0] == {"time": "2026-11-23T08:00:00Z", "site_id": "s1",
                                    "device_id": "d1", "status": "online", "source": "status"}
    # an offset page's last row continues by cursor too
    first = client.get("/api/v1/scans", params={"site": "s1", "limit": 5, "offset": 5},
                       headers=viewer).json()
    rest = _walk(client, "/api/v1/scans", {"site": "s1", "limit": 5,
                                           "cursor": first["next_cursor"]}, viewer, "scan_id")
    assert [(i["scan_id"],) for i in first["items"]] + rest == _offset_order(
        client, "/api/v1/scans", {"site": "s1"}, viewer, "scan_id")[5:]


def test_cursors_are_checked_and_scoping_holds(client: TestClient, database: str,
                                              make_token: Callable[..., dict[str, str]]
                                              ) -> None:
    _seed(database)
    viewer = make_token("viewer")
    for path in ("/api/v1/scans", "/api/v1/device-status", "/api/v1/dead-letters"):
        headers = make_token("engineer") if "dead" in path else viewer
        for bad in ({"cursor": "nonsense"}, {"cursor": "W10"}, {"cursor": "x" * 2000},
                    {"cursor": "WzFd", "offset": 3}):
            r = client.get(path, params=bad, headers=headers)
            assert r.status_code == 422, (path, bad, r.text)
            assert r.json()["error"]["code"] == "invalid"
    scoped = make_token("viewer", site="s2")
    mine = client.get("/api/v1/device-status", headers=scoped).json()
    assert [i["device_id"] for i in mine["items"]] == ["x"] and mine["next_cursor"] is None
    assert client.get("/api/v1/device-status", params={"site": "s1"},
                      headers=scoped).status_code == 403
    assert client.get("/api/v1/device-status").status_code == 401
    scans = client.get("/api/v1/scans", params={"limit": 100}, headers=scoped).json()
    assert {i["site_id"] for i in scans["items"]} == {"s2"} and scans["total"] == 23
