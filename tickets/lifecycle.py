"""What every ticket lifecycle shares: a step's start and end states, the errors it raises, the
locked read of one ticket, the state change with its history line.

Work orders and complaints each keep their own table of steps, roles and rules; this module
only does the reading and writing the two would otherwise repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from caretaker import errors


class Refused(errors.Conflict):
    """A step the lifecycle refuses in the ticket's current state."""


class NotFound(errors.NotFound, Refused):
    """No such ticket (in the caller's scope)."""


class Invalid(errors.Invalid, Refused):
    """Fields or a step that cannot be used."""


@dataclass(frozen=True)
class Transition:
    """A lifecycle step: the states it may start from, the state it leads to, and the *_at
    column it stamps (if any)."""

    frm: tuple[str, ...]
    to: str
    stamp: str | None = None


@dataclass(frozen=True)
class Kind:
    """A kind of ticket: its table, its history table and the history's key column."""

    noun: str
    table: LiteralString
    history: LiteralString
    key: LiteralString


WORK_ORDER = Kind("work order", "work_orders", "work_order_history", "work_order_id")
COMPLAINT = Kind("complaint", "complaints", "complaint_history", "complaint_id")


def history(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, at: datetime,
            action: str, actor: str, frm: str | None = None, to: str | None = None,
            note: str | None = None) -> None:
    """Append a line to a ticket's history."""
    conn.execute(sql.SQL("INSERT INTO {} ({}, at, action, from_state, to_state, actor, note)"
                         " VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
                     sql.Identifier(kind.history), sql.Identifier(kind.key)),
                 (ticket_id, at, action, frm, to, actor, note))


def row(conn: psycopg.Connection[Any], kind: Kind, ticket_id: int, *, lock: bool = False,
        scope: str | None = None) -> dict[str, Any]:
    """One ticket (locked for update if asked), refused outside the caller's site."""
    query = sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(kind.table))
    params: list[Any] = [ticket_id]
    if scope is not None:
        query += sql.SQL(" AND site_id = %s")
        params.append(scope)
    found = conn.execute(query + sql.SQL(" FOR UPDATE" if lock else ""), params).fetchone()
    if found is None:
        raise NotFound(f"{kind.noun} {ticket_id} not found")
    return dict(found)


def check(kind: Kind, action: str, step: Transition, state: str) -> None:
    """Refuse a step that cannot start from `state`."""
    if state not in step.frm:
        raise Refused(f"cannot {action} a {kind.noun} that is {state}")


def move(conn: psycopg.Connection[Any], kind: Kind, current: dict[str, Any], action: str,
         step: Transition, *, actor: str, now: datetime, sets: dict[str, Any] | None = None,
         note: str | None = None) -> dict[str, Any]:
    """Write a checked step: the new state, its stamp and `sets`, and its history line."""
    values: dict[str, Any] = {"state": step.to, "updated_at": now}
    if step.stamp:
        values[step.stamp] = now
    values.update(sets or {})
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k))
                                     for k in values)
    updated = conn.execute(sql.SQL("UPDATE {} SET ").format(sql.Identifier(kind.table))
                           + assignments + sql.SQL(" WHERE id = %s RETURNING *"),
                           [*values.values(), current["id"]]).fetchone()
    history(conn, kind, current["id"], at=now, action=action, frm=current["state"], to=step.to,
            actor=actor, note=note)
    return dict(updated or {})


def rows(conn: psycopg.Connection[Any], query: LiteralString, *params: Any
         ) -> Sequence[dict[str, Any]]:
    """Every row of a query, as dicts (a ticket's history, refs, visits...)."""
    return [dict(r) for r in conn.execute(query, params)]
