"""The registry's data layer: sites, zones, device types, devices, guards and checkpoints.

Each table is described once (its key, writable columns and filters); list, get, create,
update and upsert are written once over those descriptions. Every value is a query
parameter; identifiers come only from the descriptions below, through psycopg.sql.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from caretaker import errors
from caretaker.paging import Where, fetch_page


class RegistryError(errors.Invalid):
    """A write the registry refuses."""


class Conflict(errors.Conflict, RegistryError):
    """The record exists already, or a unique value (a checkpoint tag) is taken."""


class BadReference(RegistryError):
    """The record names a site, zone, device type or device that does not exist."""


@dataclass(frozen=True)
class Table:
    """One registry table: its primary key, writable columns, and list filters."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    json_columns: tuple[str, ...] = ()
    stamped: bool = False  # has created_at/updated_at
    site_column: str | None = "site_id"  # the column site scoping applies to
    filters: Mapping[str, str] = field(default_factory=dict)  # query name -> column

    @property
    def noun(self) -> str:
        return self.name.rstrip("s").replace("_", " ")


SITES = Table("sites", ("id",), ("name", "timezone", "address", "auto_registered"),
              stamped=True, site_column="id")
ZONES = Table("zones", ("site_id", "id"), ("name", "kind"),
              filters={"site": "site_id", "kind": "kind"})
DEVICE_TYPES = Table("device_types", ("id",), ("name", "metrics"), json_columns=("metrics",),
                     site_column=None)
DEVICES = Table("devices", ("site_id", "id"),
                ("type_id", "zone_id", "name", "status", "attributes", "overrides"),
                json_columns=("attributes", "overrides"), stamped=True,
                filters={"site": "site_id", "zone": "zone_id", "type": "type_id",
                         "status": "status", "online": "online"})
GUARDS = Table("guards", ("site_id", "id"), ("name", "post", "active"),
               filters={"site": "site_id", "post": "post", "active": "active"})
CHECKPOINTS = Table("checkpoints", ("site_id", "id"),
                    ("zone_id", "name", "tag", "kind", "device_id", "checklist"),
                    json_columns=("checklist",), stamped=True,
                    filters={"site": "site_id", "zone": "zone_id", "kind": "kind",
                             "device": "device_id", "tag": "tag"})

TABLES = {t.name: t for t in (SITES, ZONES, DEVICE_TYPES, DEVICES, GUARDS, CHECKPOINTS)}


def _where(table: Table, equals: Mapping[str, Any], scope: str | None) -> Where:
    """Conditions for column = value pairs (None skipped) plus the token's site scope."""
    where = Where()
    where.equals_all(equals)
    if table.site_column is not None:
        where.equals(table.site_column, scope)
    return where


def _value(table: Table, column: str, value: Any) -> Any:
    return Jsonb(value) if column in table.json_columns and value is not None else value


def list_rows(conn: psycopg.Connection[Any], table: Table, *, filters: Mapping[str, Any],
              scope: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of a table's rows matching `filters` (column -> value), and the total count."""
    order = sql.SQL(", ").join(map(sql.Identifier, table.keys))
    return fetch_page(conn, table.name, _where(table, filters, scope), order=order, limit=limit,
                      offset=offset)


def get_row(conn: psycopg.Connection[Any], table: Table, key: tuple[str, ...], *,
            scope: str | None = None) -> dict[str, Any] | None:
    """The row with this primary key (within the scope's site), or None."""
    where = _where(table, dict(zip(table.keys, key, strict=True)), scope)
    row = conn.execute(
        sql.SQL("SELECT * FROM {}").format(sql.Identifier(table.name)) + where.clause(),
        where.params).fetchone()
    return dict(row) if row is not None else None


def insert_row(conn: psycopg.Connection[Any], table: Table, values: Mapping[str, Any], *,
               now: datetime) -> dict[str, Any]:
    """Insert a new row; Conflict if its key or a unique value is taken."""
    columns = [c for c in (*table.keys, *table.columns) if c in values]
    params = [_value(table, c, values[c]) for c in columns]
    if table.stamped:
        columns += ["created_at", "updated_at"]
        params += [now, now]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    with _integrity_errors(table, values):
        row = conn.execute(query, params).fetchone()
    return dict(row)  # type: ignore[arg-type]


def update_row(conn: psycopg.Connection[Any], table: Table, key: tuple[str, ...],
               changes: Mapping[str, Any], *, scope: str | None = None,
               now: datetime) -> dict[str, Any] | None:
    """Change some columns of one row (within the scope's site); None if there is no such row."""
    columns = [c for c in table.columns if c in changes]
    if not columns:
        return get_row(conn, table, key, scope=scope)
    sets: list[sql.Composable] = [sql.SQL("{} = %s").format(sql.Identifier(c))
                                  for c in columns]
    params = [_value(table, c, changes[c]) for c in columns]
    if table.stamped:
        sets.append(sql.SQL("updated_at = %s"))
        params.append(now)
    where = _where(table, dict(zip(table.keys, key, strict=True)), scope)
    query = (sql.SQL("UPDATE {} SET ").format(sql.Identifier(table.name))
             + sql.SQL(", ").join(sets) + where.clause() + sql.SQL(" RETURNING *"))
    with _integrity_errors(table, {**dict(zip(table.keys, key, strict=True)), **changes}):
        row = conn.execute(query, [*params, *where.params]).fetchone()
    return dict(row) if row is not None else None


def upsert_row(conn: psycopg.Connection[Any], table: Table, values: Mapping[str, Any], *,
               now: datetime) -> str:
    """Insert or update a row by its key; 'inserted', 'updated' or 'unchanged'.

    A row whose columns already hold these values is not touched at all (not even its
    updated_at), so applying the same configuration twice changes nothing.
    """
    columns = [c for c in table.columns if c in values]
    all_columns = [*table.keys, *columns]
    params = [_value(table, c, values[c]) for c in all_columns]
    sets: list[sql.Composable] = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                  for c in columns]
    if table.stamped:
        all_columns += ["created_at", "updated_at"]
        params += [now, now]
        sets.append(sql.SQL("updated_at = EXCLUDED.updated_at"))
    target = sql.Identifier(table.name)
    current = sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c))
                                 for c in columns)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c))
                                  for c in columns)
    query = sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        " WHERE ROW({current}) IS DISTINCT FROM ROW({incoming})"
        " RETURNING (xmax = 0) AS inserted"
    ).format(
        t=target,
        cols=sql.SQL(", ").join(map(sql.Identifier, all_columns)),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(all_columns)),
        keys=sql.SQL(", ").join(map(sql.Identifier, table.keys)),
        sets=sql.SQL(", ").join(sets),
        current=current,
        incoming=incoming,
    )
    with _integrity_errors(table, values):
        row = conn.execute(query, params).fetchone()
    if row is None:
        return "unchanged"
    return "inserted" if _first(row) else "updated"


def existing_ids(conn: psycopg.Connection[Any], table: Table, site_id: str | None) -> set[str]:
    """The ids of a table's rows (of one site, for per-site tables)."""
    where = _where(table, {"site_id": site_id} if table.site_column == "site_id" else {}, None)
    rows = conn.execute(
        sql.SQL("SELECT id FROM {}").format(sql.Identifier(table.name)) + where.clause(),
        where.params).fetchall()
    return {str(_first(r)) for r in rows}


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


@contextmanager
def _integrity_errors(table: Table, values: Mapping[str, Any]) -> Iterator[None]:
    """Turn the database's integrity errors into Conflict / BadReference with a clear message."""
    key = "/".join(str(values.get(k)) for k in table.keys)
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        if "tag" in (exc.diag.message_detail or ""):
            raise Conflict(f"tag {values.get('tag')!r} is already used by another checkpoint "
                           f"of site {values.get('site_id')!r}") from exc
        raise Conflict(f"{table.noun} {key} exists already") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        detail = exc.diag.message_detail or str(exc)
        raise BadReference(f"{table.noun} {key} refers to something that does not exist: "
                           f"{detail}") from exc
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        raise RegistryError(f"{table.noun} {key}: {exc.diag.message_primary}") from exc


def check_timezone(name: str) -> str:
    """The name itself when it is an IANA time zone (Asia/Shanghai); ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as "
                         "'Asia/Shanghai' or 'UTC')") from None
    return name
