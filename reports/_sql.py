"""Small query helpers for reports/: rows as dicts whatever the connection's row factory."""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row


def rows(conn: psycopg.Connection[Any], query: LiteralString,
         params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
    """Every row of a parameterised query, as dicts."""
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def one(conn: psycopg.Connection[Any], query: LiteralString,
        params: tuple[Any, ...] | dict[str, Any] = ()) -> dict[str, Any] | None:
    """The first row of a parameterised query as a dict, or None."""
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchone()
