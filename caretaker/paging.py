"""Paged reads for the API's lists: a WHERE clause built condition by condition, and one page
by offset (small tables, exact totals) or by keyset (an opaque cursor after the last row seen:
deep pages of large tables cost what the first does; totals counted up to a cap, estimated
beyond it)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg import sql

from caretaker.errors import Invalid

COUNT_CAP = 10_000  # matches counted exactly up to this many; the planner's estimate beyond
MAX_CURSOR = 1024  # characters of a cursor (the API bounds the parameter with it)


@dataclass
class Where:
    """The conditions of a WHERE clause and their query parameters, added one at a time."""

    parts: list[sql.Composable] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: LiteralString, *params: Any) -> None:
        """Add a condition written in SQL with %s placeholders for its parameters."""
        self.parts.append(sql.SQL(condition))
        self.params.extend(params)

    def equals(self, column: str, value: Any) -> None:
        """Add `column = value`; a value of None adds nothing (that filter is not asked for)."""
        if value is not None:
            self.parts.append(sql.SQL("{} = %s").format(_column(column)))
            self.params.append(value)

    def equals_all(self, filters: Mapping[str, Any],
                   columns: Mapping[str, str] | None = None) -> None:
        """Add `column = value` for each filter given; `columns` maps filter names to columns."""
        for key, value in filters.items():
            self.equals(columns[key] if columns is not None else key, value)

    def within(self, column: str, since: Any, until: Any) -> None:
        """Add `since <= column < until`, each bound only when given."""
        if since is not None:
            self.parts.append(sql.SQL("{} >= %s").format(_column(column)))
            self.params.append(since)
        if until is not None:
            self.parts.append(sql.SQL("{} < %s").format(_column(column)))
            self.params.append(until)

    def clause(self) -> sql.Composable:
        """` WHERE a AND b ...`, or nothing when there are no conditions."""
        if not self.parts:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self.parts)


def fetch_page(conn: psycopg.Connection[Any], table: str, where: Where, *,
               order: LiteralString | sql.Composable, limit: int, offset: int,
               select: LiteralString = "*", source: LiteralString | None = None
               ) -> tuple[list[dict[str, Any]], int]:
    """One page of a table's rows matching `where`, sorted by `order`, and how many match.

    `source` replaces the table with a FROM expression (joins, aliases) and `select` picks
    the columns, for lists that show more than one table's row.
    """
    name = sql.SQL(source) if source is not None else sql.Identifier(table)
    clause = where.clause()
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(name) + clause,
                         where.params).fetchone()
    by = sql.SQL(order) if isinstance(order, str) else order
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {}").format(sql.SQL(select), name) + clause
        + sql.SQL(" ORDER BY {} LIMIT %s OFFSET %s").format(by),
        [*where.params, limit, offset],
    ).fetchall()
    return [dict(r) for r in rows], int(total["n"] if total else 0)


def _column(column: str) -> sql.Identifier:
    """A column name, optionally qualified by its table alias ("r.site_id")."""
    return sql.Identifier(*column.split("."))


@dataclass(frozen=True)
class Key:
    """One column of a keyset order: its SQL column, its name in the rows, its direction.

    The keys of an order must identify a row (the last one a tie-breaker such as an id) and
    never be null.
    """

    column: str
    name: str
    descending: bool = False


@dataclass
class KeysetPage:
    """One page: its rows, how many match in all (exact, or an estimate past COUNT_CAP) and
    the cursor of the next page (None: this is the last)."""

    rows: list[dict[str, Any]]
    total: int
    exact: bool
    next_cursor: str | None


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for the row with these key values (base64 of typed JSON)."""
    typed = [{"t": v.isoformat()} if isinstance(v, datetime) else
             {"u": str(v)} if isinstance(v, UUID) else v for v in values]
    raw = json.dumps(typed, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[Key]) -> list[Any]:
    """The key values a cursor carries; Invalid when it is not one of this list's cursors."""
    bad = Invalid("cursor: not a cursor of this list (use next_cursor as given)")
    if len(cursor) > MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        typed = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise bad from exc
    if not isinstance(typed, list) or len(typed) != len(keys):
        raise bad
    values: list[Any] = []
    for v in typed:
        try:
            if isinstance(v, dict) and v.keys() == {"t"}:
                when = datetime.fromisoformat(v["t"])
                if when.tzinfo is None:
                    raise bad
                values.append(when)
            elif isinstance(v, dict) and v.keys() == {"u"}:
                values.append(UUID(v["u"]))
            elif isinstance(v, int | float | str) and not isinstance(v, bool):
                values.append(v)
            else:
                raise bad
        except (TypeError, ValueError) as exc:
            raise bad from exc
    return values


def after(keys: Sequence[Key], values: Sequence[Any]) -> tuple[sql.Composable, list[Any]]:
    """The condition "comes after the row with these key values" in the keys' order.

    One direction throughout: a row comparison, which a matching index answers as a range.
    Mixed directions: the first key's bound (for the index) and the spelled-out ordering.
    """
    cols = [_column(k.column) for k in keys]
    if len({k.descending for k in keys}) == 1:
        op = sql.SQL("<" if keys[0].descending else ">")
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in keys)
        return (sql.SQL("({}) {} ({})").format(sql.SQL(", ").join(cols), op, marks),
                list(values))
    first = sql.SQL("{} {} %s").format(cols[0], sql.SQL("<=" if keys[0].descending else ">="))
    params: list[Any] = [values[0]]
    branches: list[sql.Composable] = []
    for i, key in enumerate(keys):
        parts = [sql.SQL("{} = %s").format(cols[j]) for j in range(i)]
        parts.append(sql.SQL("{} {} %s").format(cols[i], sql.SQL("<" if key.descending
                                                                  else ">")))
        params.extend(values[: i + 1])
        branches.append(sql.SQL("(") + sql.SQL(" AND ").join(parts) + sql.SQL(")"))
    return (first + sql.SQL(" AND (") + sql.SQL(" OR ").join(branches) + sql.SQL(")"),
            params)


def fetch_keyset(conn: psycopg.Connection[Any], table: str, where: Where, *,
                 keys: Sequence[Key], limit: int, cursor: str | None = None, offset: int = 0,
                 select: LiteralString = "*", source: LiteralString | None = None,
                 count_cap: int = COUNT_CAP) -> KeysetPage:
    """One page of the rows matching `where` in the keys' order: after `cursor` when given,
    else from `offset`; with the total (exact up to `count_cap`) and the next page's cursor.

    `select` must include every key under its `name`.
    """
    if cursor is not None and offset:
        raise Invalid("give either cursor or offset, not both")
    name = sql.SQL(source) if source is not None else sql.Identifier(table)
    clause = where.clause()
    total, exact = _count(conn, name, clause, where.params, count_cap)
    page_where = Where(list(where.parts), list(where.params))
    if cursor is not None:
        condition, params = after(keys, decode_cursor(cursor, keys))
        page_where.parts.append(condition)
        page_where.params.extend(params)
    by = sql.SQL(", ").join(sql.SQL("{}{}").format(
        _column(k.column), sql.SQL(" DESC" if k.descending else "")) for k in keys)
    rows = [dict(r) for r in conn.execute(
        sql.SQL("SELECT {} FROM {}").format(sql.SQL(select), name) + page_where.clause()
        + sql.SQL(" ORDER BY {} LIMIT %s OFFSET %s").format(by),
        [*page_where.params, limit + 1, offset]).fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1][k.name] for k in keys]) if more and rows else None
    return KeysetPage(rows, total, exact, next_cursor)


def _count(conn: psycopg.Connection[Any], name: sql.Composable, clause: sql.Composable,
           params: list[Any], cap: int) -> tuple[int, bool]:
    """How many rows match: exact up to `cap`, else the planner's estimate (at least cap + 1)."""
    row = conn.execute(sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM {}").format(name)
                       + clause + sql.SQL(" LIMIT %s) c"), [*params, cap + 1]).fetchone()
    n = int(row["n"]) if row else 0
    if n <= cap:
        return n, True
    plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {}").format(name) + clause,
                        params).fetchone()
    estimate = int(next(iter(plan.values()))[0]["Plan"]["Plan Rows"]) if plan else 0
    return max(estimate, cap + 1), False
