"""GET /api/v1/telemetry picks the resolution from the range and says which, pages by cursor,
and answers the same whether the hours are rolled up or not; /latest reads latest_readings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from rules.rollups import catch_up
from tests.rollups.helpers import Point, close, expected, ingest, steady, utc

NOW = utc(2026, 11, 23, 8, 0)  # the api_clock's time
H = timedelta(hours=1)


def _as_expected(items: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(i["device"], i["metric"], datetime.fromisoformat(i["time"])):
            {k: i[k] for k in ("min", "max", "avg", "count", "last", "last_text")}
            for i in items}


def _all(client: TestClient, headers: dict[str, str], **params: Any) -> tuple[
        list[dict[str, Any]], set[str], int]:
    """Every page, following next_cursor: (items, resolutions, pages)."""
    items: list[dict[str, Any]] = []
    seen, pages, cursor = set(), 0, None
    while True:
        r = client.get("/api/v1/telemetry", headers=headers,
                       params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] is None
        items += body["items"]
        seen.add(body["resolution"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, seen, pages


def test_resolution_follows_the_range_and_reads_are_exact(
        client: TestClient, database: str, make_token: Callable[..., dict[str, str]]) -> None:
    points = steady(["p1", "p2"], ["pressure"], NOW - 10 * 24 * H, NOW, timedelta(minutes=10))
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
    viewer = make_token("viewer")
    one = {"site": "s1", "device": "p1", "metric": "pressure"}
    for rolled in (False, True):
        if rolled:
            with psycopg.connect(database, row_factory=dict_row) as conn:
                assert catch_up(conn, now=NOW) > 0
        hour, _, _ = _all(client, viewer, **one, **{"from": (NOW - H).isoformat()})
        assert [i["time"] for i in hour][:2] == ["2026-11-23T07:00:00Z", "2026-11-23T07:10:00Z"]
        assert set(hour[0]) == {"time", "device", "metric", "value", "text"}
        day, res, _ = _all(client, viewer, **one, **{"from": (NOW - 24 * H).isoformat()})
        assert res == {"1m"}
        assert close(_as_expected(day), expected(
            [p for p in points if p.device == "p1"], timedelta(minutes=1), NOW - 24 * H, NOW))
        month, res, _ = _all(client, viewer, **one, **{"from": (NOW - 30 * 24 * H).isoformat()})
        assert res == {"1h"} and len(month) == 240
        assert close(_as_expected(month), expected(
            [p for p in points if p.device == "p1"], H))
        # a bucket asked for reads the coarsest tier that adds up to it, unaligned edges raw
        start = NOW - 3 * 24 * H - timedelta(minutes=25)
        daily, res, _ = _all(client, viewer, site="s1", bucket="1d", **{"from": start.isoformat()})
        assert res == {"1h"}
        assert close(_as_expected(daily), expected(points, timedelta(days=1), start, NOW))
        fifteen, res, _ = _all(client, viewer, site="s1", bucket="15m",
                               **{"from": start.isoformat()})
        assert res == {"1m"}
        assert close(_as_expected(fifteen), expected(points, timedelta(minutes=15), start, NOW))
        forced, res, _ = _all(client, viewer, site="s1", bucket="1h", resolution="raw",
                              **{"from": start.isoformat()})
        assert res == {"raw"} and close(_as_expected(forced), _as_expected(
            _all(client, viewer, site="s1", bucket="1h", **{"from": start.isoformat()})[0]))


def test_raw_pages_by_cursor_without_loss_or_repeat(
        client: TestClient, database: str, make_token: Callable[..., dict[str, str]]) -> None:
    points = steady(["a", "b", "c"], ["m1", "m2"], NOW - 2 * H, NOW, timedelta(minutes=1))
    points += [Point("a", "mode", NOW - H, "auto")]
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
    items, res, pages = _all(client, make_token("viewer"), site="s1", limit=7,
                             **{"from": (NOW - 2 * H).isoformat()})
    assert res == {"raw"} and pages == -(-len(points) // 7) + (len(points) % 7 == 0)
    keys = [(i["time"], i["device"], i["metric"]) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(points) == len(keys)
    assert any(i["text"] == "auto" for i in items)
    # bucketed pages too
    buckets, _, pages = _all(client, make_token("viewer"), site="s1", limit=5, bucket="10m",
                             **{"from": (NOW - 2 * H).isoformat()})
    assert close(_as_expected(buckets), expected(points, timedelta(minutes=10)))


def test_bad_cursor_and_resolution_are_refused(
        client: TestClient, database: str, make_token: Callable[..., dict[str, str]]) -> None:
    viewer = make_token("viewer")
    for params in ({"cursor": "garbage"}, {"cursor": "x" * 600}, {"resolution": "5m"},
                   {"resolution": "1h", "bucket": "30m"}, {"resolution": "1m", "bucket": "30s"}):
        r = client.get("/api/v1/telemetry", params={"site": "s1", **params}, headers=viewer)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["code"] == "invalid"


def test_latest_comes_from_latest_readings(
        client: TestClient, database: str, make_token: Callable[..., dict[str, str]]) -> None:
    points = steady(["p1", "p2"], ["pressure", "temp"], NOW - H, NOW, timedelta(minutes=1))
    with psycopg.connect(database, row_factory=dict_row) as conn:
        ingest(conn, points, received=NOW)
        ingest(conn, [Point("p1", "temp", NOW - 2 * H, -1.0)], received=NOW)  # late: ignored
        ingest(conn, [Point("p3", "temp", NOW - 10 * 24 * H, 3.0)], received=NOW)  # too old
    r = client.get("/api/v1/telemetry/latest", params={"site": "s1"},
                   headers=make_token("viewer"))
    assert r.status_code == 200, r.text
    got = {(i["device"], i["metric"]): (i["time"], i["value"]) for i in r.json()["items"]}
    newest = {(p.device, p.metric): p for p in points}
    assert got == {k: (p.time.isoformat().replace("+00:00", "Z"), p.value)
                   for k, p in newest.items()}
    r = client.get("/api/v1/telemetry/latest", params={"site": "s1", "within": "30d",
                                                       "device": "p3"},
                   headers=make_token("viewer"))
    assert [i["value"] for i in r.json()["items"]] == [3.0]
