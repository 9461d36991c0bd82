"""The paged-list helper: filters skipped when not asked for, time bounds, order, page and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from caretaker.paging import Where, fetch_page

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
