"""The paged-list helper: filters skipped when not asked for, time bounds, order, page and count."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from caretaker.errors import Invalid
from caretaker.paging import Key, Where, decode_cursor, encode_cursor, fetch_keyset, fetch_page

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _table(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TEMP TABLE paged (site_id text, id int, kind text, at timestamptz)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO paged VALUES (%s, %s, %s, %s)",
                        [("s1" if i % 2 else "s2", i, "a" if i < 6 else "b",
                          T0 + timedelta(hours=i)) for i in range(10)])


def test_no_conditions_lists_every_row_in_order_with_the_total(
        conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    rows, total = fetch_page(conn, "paged", Where(), order="id DESC", limit=3, offset=2)
    assert total == 10
    assert [r["id"] for r in rows] == [7, 6, 5]
    assert rows[0] == {"site_id": "s1", "id": 7, "kind": "b", "at": T0 + timedelta(hours=7)}


def test_filters_given_as_none_are_not_applied(conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    where = Where()
    where.equals_all({"site": "s1", "kind": None}, {"site": "site_id", "kind": "kind"})
    where.equals("kind", "a")
    rows, total = fetch_page(conn, "paged", where, order="id", limit=100, offset=0)
    assert (total, [r["id"] for r in rows]) == (3, [1, 3, 5])


def test_within_includes_since_and_excludes_until(conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    where = Where()
    where.within("at", T0 + timedelta(hours=2), T0 + timedelta(hours=5))
    rows, total = fetch_page(conn, "paged", where, order="id", limit=100, offset=0)
    assert (total, [r["id"] for r in rows]) == (3, [2, 3, 4])
    open_ended = Where()
    open_ended.within("at", None, T0 + timedelta(hours=2))
    open_ended.add("id <> %s", 0)
    rows, total = fetch_page(conn, "paged", open_ended, order="id", limit=100, offset=0)
    assert (total, [r["id"] for r in rows]) == (1, [1])


def test_a_page_past_the_end_is_empty_but_still_counts(conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    where = Where()
    where.equals("site_id", "s2")
    assert fetch_page(conn, "paged", where, order="id", limit=5, offset=50) == ([], 5)


def _walk(conn: psycopg.Connection[Any], keys: list[Key], where: Where, limit: int
          ) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        page = fetch_keyset(conn, "paged", where, keys=keys, limit=limit, cursor=cursor)
        ids += [r["id"] for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the cursor never ran out")


def test_keyset_pages_walk_every_row_once_in_the_order_of_offset_pages(
        conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    conn.execute("INSERT INTO paged VALUES ('s1', 10, 'a', %s), ('s2', 11, 'b', %s)",
                 (T0 + timedelta(hours=3), T0 + timedelta(hours=3)))  # ties on `at`
    orders = {  # keys, and the same order for an offset page
        "uniform": ([Key("at", "at", True), Key("id", "id", True)], "at DESC, id DESC"),
        "mixed": ([Key("at", "at", True), Key("id", "id")], "at DESC, id"),
        "ascending": ([Key("kind", "kind"), Key("at", "at"), Key("id", "id")], "kind, at, id"),
    }
    for keys, order in orders.values():
        expected = [r["id"] for r in fetch_page(conn, "paged", Where(), order=order,
                                                limit=100, offset=0)[0]]
        for limit in (1, 3, 5, 12):
            assert _walk(conn, keys, Where(), limit) == expected, (order, limit)
    where = Where()
    where.equals("site_id", "s1")
    assert _walk(conn, orders["mixed"][0], where, 2) == [
        r["id"] for r in fetch_page(conn, "paged", where, order="at DESC, id", limit=100,
                                    offset=0)[0]]
    first = fetch_keyset(conn, "paged", Where(), keys=orders["uniform"][0], limit=4, offset=8)
    assert [r["id"] for r in first.rows] == [3, 2, 1, 0] and first.next_cursor is None
    assert (first.total, first.exact) == (12, True)


def test_a_total_past_the_cap_is_an_estimate(conn: psycopg.Connection[Any]) -> None:
    _table(conn)
    conn.execute("ANALYZE paged")
    page = fetch_keyset(conn, "paged", Where(), keys=[Key("id", "id")], limit=2, count_cap=5)
    assert not page.exact and page.total >= 6
    assert fetch_keyset(conn, "paged", Where(), keys=[Key("id", "id")], limit=2,
                        count_cap=10).exact


def test_cursors_round_trip_their_types_and_refuse_anything_else(
        conn: psycopg.Connection[Any]) -> None:
    keys = [Key("at", "at"), Key("u", "u"), Key("id", "id"), Key("s", "s")]
    values = [T0, uuid.uuid4(), 7, "x/y"]
    assert decode_cursor(encode_cursor(values), keys) == values
    bad = ["", "not base64!", encode_cursor([1]), encode_cursor([{"t": "2026-01-01T00:00"}] * 4),
           encode_cursor([[1], 2, 3, 4]), encode_cursor([True, 1, 2, 3]), "A" * 2000,
           base64.urlsafe_b64encode(b"{\"a\": 1}").decode()]
    for cursor in bad:
        with pytest.raises(Invalid):
            decode_cursor(cursor, keys)
    _table(conn)
    with pytest.raises(Invalid):
        fetch_keyset(conn, "paged", Where(), keys=[Key("id", "id")], limit=2,
                     cursor=encode_cursor([3]), offset=1)
