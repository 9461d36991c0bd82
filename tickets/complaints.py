"""Complaints (投诉): numbered per site and year, answered within a deadline, closed as handled
or as not valid with a reason. Follows the centre's 客户投诉处理制度 (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from caretaker import errors

GRADES = ("轻微", "一般", "严重")  # minor, ordinary, serious
CATEGORIES = ("房屋管理", "设备管理", "秩序管理", "环境管理", "综合服务", "相邻关系", "开发相关",
              "政府部门移送", "其他")
CHANNELS = ("phone", "wechat", "front_desk", "console", "app", "letter", "visit")
STATES = ("open", "assigned", "answered", "rework", "closed")
LIVE = ("open", "assigned", "answered", "rework")
RESOLUTIONS = ("handled", "invalid")


class ComplaintError(errors.Conflict):
    """A request the complaint lifecycle refuses in the complaint's current state."""


class NotFound(errors.NotFound, ComplaintError):
    """No such complaint (in the caller's scope)."""


class Invalid(errors.Invalid, ComplaintError):
    """Fields that cannot be used."""


@dataclass(frozen=True)
class Transition:
    """A lifecycle step: the states it may start from and the state it leads to."""

    frm: tuple[str, ...]
    to: str


TRANSITIONS = {
    "assign": Transition(("open", "assigned", "rework"), "assigned"),
    "answer": Transition(("open", "assigned", "rework"), "answered"),
    # the complainant is not satisfied (or a follow-up visit found them dissatisfied)
    "rework": Transition(("answered", "closed"), "rework"),
    "close": Transition(LIVE, "closed"),
}


def history(conn: psycopg.Connection[Any], complaint_id: int, *, at: datetime, action: str,
            actor: str, frm: str | None = None, to: str | None = None,
            note: str | None = None) -> None:
    """Append a line to a complaint's history."""
    conn.execute(
        "INSERT INTO complaint_history (complaint_id, at, action, from_state, to_state, actor,"
        " note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (complaint_id, at, action, frm, to, actor, note))


def row(conn: psycopg.Connection[Any], complaint_id: int, *, lock: bool = False,
        scope: str | None = None) -> dict[str, Any]:
    """One complaint (locked for update if asked), refused outside the caller's site."""
    query = "SELECT * FROM complaints WHERE id = %s"
    params: list[Any] = [complaint_id]
    if scope is not None:
        query += " AND site_id = %s"
        params.append(scope)
    found = conn.execute(query + (" FOR UPDATE" if lock else ""), params).fetchone()
    if found is None:
        raise NotFound(f"complaint {complaint_id} not found")
    return dict(found)


def step(conn: psycopg.Connection[Any], complaint_id: int, action: str, *, actor: str,
         now: datetime, sets: dict[str, Any] | None = None, note: str | None = None,
         scope: str | None = None) -> dict[str, Any]:
    """Move a complaint along its lifecycle if the step is allowed; the updated complaint.

    `sets` are further columns the step writes (answer text, team, resolution, ...).
    """
    move = TRANSITIONS.get(action)
    if move is None:
        raise Invalid(f"unknown action {action!r}")
    current = row(conn, complaint_id, lock=True, scope=scope)
    if current["state"] not in move.frm:
        raise ComplaintError(f"cannot {action} a complaint that is {current['state']}")
    values: dict[str, Any] = {"state": move.to, "updated_at": now, **(sets or {})}
    if action == "rework":
        values.update(rework_count=current["rework_count"] + 1, closed_at=None,
                      resolution=None)
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k))
                                     for k in values)
    updated = conn.execute(sql.SQL("UPDATE complaints SET ") + assignments
                           + sql.SQL(" WHERE id = %s RETURNING *"),
                           [*values.values(), complaint_id]).fetchone()
    history(conn, complaint_id, at=now, action=action, frm=current["state"], to=move.to,
            actor=actor, note=note)
    return dict(updated or {})
