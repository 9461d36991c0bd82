"""Paged reads for the API's lists: a WHERE clause built condition by condition, and one page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg
from psycopg import sql


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
