"""Complaints (投诉): numbered per site and year, answered within a deadline, closed as handled
or as not valid with a reason. Follows the centre's 客户投诉处理制度 (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from caretaker import privacy
from caretaker.paging import Where, fetch_page
from tickets import lifecycle
from tickets.lifecycle import COMPLAINT, Transition
from tickets.notify import notify
from tickets.policy import load_policy

GRADES = ("轻微", "一般", "严重")  # minor, ordinary, serious
CATEGORIES = ("房屋管理", "设备管理", "秩序管理", "环境管理", "综合服务", "相邻关系", "开发相关",
              "政府部门移送", "其他")
CHANNELS = ("phone", "wechat", "front_desk", "console", "app", "letter", "visit")
STATES = ("open", "assigned", "answered", "rework", "closed")
LIVE = ("open", "assigned", "answered", "rework")
RESOLUTIONS = ("handled", "invalid")
# 严重 complaints go to the quality department at once (seed 001, 客户投诉处理制度 2.3).
SERIOUS = "严重"
QUALITY = "quality"
# Closing as handled follows an answer the complainant accepted; as not valid, from any live
# state, with a reason.
CLOSE_FROM = {"handled": ("answered",), "invalid": LIVE}

# Who may do what (admin always). The front desk registers every complaint and reports back to
# the complainant (客户服务部前台人员集中登记 ... 向客户反馈); the responsible team (engineers)
# may answer; only a manager closes one as not valid.
ROLES = {
    "create": ("supervisor", "frontdesk"),
    "assign": ("supervisor", "frontdesk"),
    "answer": ("supervisor", "frontdesk", "engineer"),
    "rework": ("supervisor", "frontdesk"),
    "close": ("supervisor", "frontdesk"),
    "close_invalid": ("supervisor",),
}


def may(role: str, action: str) -> bool:
    """Whether a role may take this step on a complaint."""
    return role == "admin" or role in ROLES.get(action, ())


# The errors every ticket lifecycle raises (tickets.lifecycle), under this module's names.
ComplaintError = lifecycle.Refused
NotFound = lifecycle.NotFound
Invalid = lifecycle.Invalid

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
    lifecycle.history(conn, COMPLAINT, complaint_id, at=at, action=action, actor=actor, frm=frm,
                      to=to, note=note)


def row(conn: psycopg.Connection[Any], complaint_id: int, *, lock: bool = False,
        scope: str | None = None) -> dict[str, Any]:
    """One complaint (locked for update if asked), refused outside the caller's site."""
    return lifecycle.row(conn, COMPLAINT, complaint_id, lock=lock, scope=scope)


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
    lifecycle.check(COMPLAINT, action, move, current["state"])
    values = dict(sets or {})
    if action == "rework":
        values.update(rework_count=current["rework_count"] + 1, closed_at=None,
                      resolution=None)
    return lifecycle.move(conn, COMPLAINT, current, action, move, actor=actor, now=now,
                          sets=values, note=note)


@dataclass(frozen=True)
class Complainant:
    """Who complains: name, unit/room (房号), phone."""

    name: str | None = None
    unit: str | None = None
    phone: str | None = None


def format_number(year: int, seq: int) -> str:
    """A complaint's number: TS-<year>-<4 digits> (more digits past 9999)."""
    return f"TS-{year}-{seq:04d}"


def next_number(conn: psycopg.Connection[Any], site_id: str, now: datetime) -> str:
    """The site's next complaint number for the year of `now` in the site's time zone.

    Gap-free: the counter row is updated in the caller's transaction and stays locked until it
    ends, so concurrent creations queue on it and a rolled-back one gives its number back.
    """
    site = conn.execute("SELECT timezone FROM sites WHERE id = %s", (site_id,)).fetchone()
    if site is None:
        raise Invalid(f"no site {site_id!r}")
    year = now.astimezone(ZoneInfo(site["timezone"])).year
    counter = conn.execute(
        "INSERT INTO complaint_numbers (site_id, year, last) VALUES (%s, %s, 1)"
        " ON CONFLICT (site_id, year) DO UPDATE SET last = complaint_numbers.last + 1"
        " RETURNING last", (site_id, year)).fetchone()
    assert counter is not None
    return format_number(year, int(counter["last"]))


def create(conn: psycopg.Connection[Any], *, site_id: str, grade: str, category: str,
           channel: str, description: str, complainant: Complainant, now: datetime,
           actor: str) -> dict[str, Any]:
    """Register a complaint: numbered, due to be answered per the site's policy, announced."""
    if grade not in GRADES:
        raise Invalid(f"grade must be one of {', '.join(GRADES)}")
    if category not in CATEGORIES:
        raise Invalid(f"category must be one of {', '.join(CATEGORIES)}")
    if channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}")
    if not description.strip():
        raise Invalid("a complaint needs a description")
    number = next_number(conn, site_id, now)
    answer_by = load_policy(conn, site_id).answer_by(now)
    created = conn.execute(
        "INSERT INTO complaints (site_id, number, grade, category, channel, complainant_name,"
        " complainant_unit, complainant_phone, description, opened_at, answer_by, created_by,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (site_id, number, grade, category, channel, complainant.name, complainant.unit,
         complainant.phone, description, now, answer_by, actor, now)).fetchone()
    assert created is not None
    record = dict(created)
    history(conn, record["id"], at=now, action="opened", to="open", actor=actor,
            note=f"{grade} {category} via {channel}")
    notify(conn, site_id=site_id, subject="complaint", event="opened", record=record, now=now,
           audience=[QUALITY] if grade == SERIOUS else [])
    return record


def assign(conn: psycopg.Connection[Any], complaint_id: int, *, team: str,
           assignee: str | None, actor: str, now: datetime, note: str | None = None,
           scope: str | None = None) -> dict[str, Any]:
    """Hand a complaint to the team that deals with it (责成相应班组处理)."""
    if not team.strip():
        raise Invalid("assigning a complaint names the team")
    said = f"to {team}" + (f" ({assignee})" if assignee else "") + (f": {note}" if note else "")
    return step(conn, complaint_id, "assign", actor=actor, now=now, scope=scope, note=said,
                sets={"team": team, "assignee": assignee})


def answer(conn: psycopg.Connection[Any], complaint_id: int, *, text: str, actor: str,
           now: datetime, scope: str | None = None) -> dict[str, Any]:
    """Record the answer given to the complainant; the first answer sets answered_at."""
    if not text.strip():
        raise Invalid("an answer needs its text")
    current = row(conn, complaint_id, lock=True, scope=scope)
    updated = step(conn, complaint_id, "answer", actor=actor, now=now, scope=scope, note=text,
                   sets={"answer": text, "answered_at": current["answered_at"] or now})
    notify(conn, site_id=updated["site_id"], subject="complaint", event="answered",
           record=updated, now=now)
    return updated


def rework(conn: psycopg.Connection[Any], complaint_id: int, *, note: str, actor: str,
           now: datetime, scope: str | None = None) -> dict[str, Any]:
    """Send an answered or closed complaint back to be handled again (the complainant is not
    satisfied)."""
    if not note.strip():
        raise Invalid("rework needs a note saying why")
    return step(conn, complaint_id, "rework", actor=actor, now=now, scope=scope, note=note,
                sets={"close_reason": None})


def close(conn: psycopg.Connection[Any], complaint_id: int, *, resolution: str,
          reason: str | None, actor: str, now: datetime,
          scope: str | None = None) -> dict[str, Any]:
    """Close a complaint as handled (after an accepted answer) or as not valid (with a reason)."""
    if resolution not in RESOLUTIONS:
        raise Invalid(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if resolution == "invalid" and not (reason or "").strip():
        raise Invalid("closing a complaint as not valid needs the reason")
    current = row(conn, complaint_id, lock=True, scope=scope)
    if current["state"] in TRANSITIONS["close"].frm and \
            current["state"] not in CLOSE_FROM[resolution]:
        raise ComplaintError(f"cannot close a complaint that is {current['state']} as "
                             f"{resolution}: it is answered first")
    updated = step(conn, complaint_id, "close", actor=actor, now=now, scope=scope,
                   note=f"{resolution}" + (f": {reason}" if reason else ""),
                   sets={"resolution": resolution, "close_reason": reason, "closed_at": now})
    notify(conn, site_id=updated["site_id"], subject="complaint", event="closed",
           record=updated, now=now)
    return updated


# ---- reads for the API -----------------------------------------------------------------

FILTERS = {"site": "site_id", "state": "state", "grade": "grade", "category": "category",
           "overdue": "overdue"}


def for_role(record: dict[str, Any], role: str) -> dict[str, Any]:
    """A complaint as this role may see it: the complainant's name and phone masked unless it
    handles complaints (caretaker.privacy.HANDLERS)."""
    if privacy.may_see_personal(role):
        return record
    return privacy.masked(record, names=("complainant_name",), phones=("complainant_phone",))


def list_complaints(conn: psycopg.Connection[Any], *, filters: dict[str, Any],
                    scope: str | None, since: datetime | None, until: datetime | None,
                    limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """One page of complaints, newest first, and how many match."""
    where = Where()
    where.equals_all(filters, FILTERS)
    where.equals("site_id", scope)
    where.within("opened_at", since, until)
    return fetch_page(conn, "complaints", where, order="opened_at DESC, id DESC", limit=limit,
                      offset=offset)


def get_complaint(conn: psycopg.Connection[Any], complaint_id: int, *,
                  scope: str | None = None) -> dict[str, Any]:
    """One complaint with its history and its follow-up visits."""
    record = row(conn, complaint_id, scope=scope)
    record["history"] = lifecycle.rows(conn, "SELECT at, action, from_state, to_state, actor,"
                                             " note FROM complaint_history"
                                             " WHERE complaint_id = %s ORDER BY id", complaint_id)
    record["follow_ups"] = lifecycle.rows(conn, "SELECT id, at, actor, channel, outcome, opinion,"
                                            " satisfaction, checked_by, checked_at,"
                                            " check_result FROM follow_ups"
                                            " WHERE complaint_id = %s ORDER BY at, id",
                                          complaint_id)
    return record

