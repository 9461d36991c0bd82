"""Complaints (投诉): register, list, read (history, visits); assign, answer, rework, close."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.errors import ApiError
from api.resource import Page, PagingDep, When, check_write_site
from api.routes.work_orders import HistoryEntry, Person, PersonPublic
from caretaker.ids import Ident
from caretaker.site_config import ShortText, Text
from caretaker.tokens import Principal
from tickets import complaints

router = APIRouter(prefix="/complaints", tags=["complaints"])


def _roles(action: str) -> Any:
    """The dependency admitting the roles that may take this step (tickets.complaints.ROLES)."""
    return Depends(require(*complaints.ROLES[action]))


Registrar = Annotated[Principal, _roles("create")]
Dispatcher = Annotated[Principal, _roles("assign")]
Answerer = Annotated[Principal, _roles("answer")]
Reworker = Annotated[Principal, _roles("rework")]
Closer = Annotated[Principal, _roles("close")]
Grade = Literal["轻微", "一般", "严重"]
Category = Literal["房屋管理", "设备管理", "秩序管理", "环境管理", "综合服务", "相邻关系",
                   "开发相关", "政府部门移送", "其他"]
Channel = Literal["phone", "wechat", "front_desk", "console", "app", "letter", "visit"]
State = Literal["open", "assigned", "answered", "rework", "closed"]
Description = Annotated[Text, StringConstraints(min_length=1)]


class ComplaintCreate(BaseModel):
    """A complaint as the front desk registers it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"site": "riverside", "grade": "一般", "category": "秩序管理",
         "complainant": {"name": "王先生", "unit": "2-1503", "phone": "13812345678"},
         "channel": "phone", "description": "楼上装修夜间 22:30 仍在施工, 噪音扰民"}]})

    site: Ident
    grade: Grade = Field(description="轻微 minor, 一般 ordinary, 严重 serious (the quality "
                         "department hears of it at once)")
    category: Category
    complainant: Person = Field(default_factory=Person)
    channel: Channel
    description: Description


class ComplaintPublic(BaseModel):
    id: int
    site_id: str
    number: str = Field(examples=["TS-2026-0007"])
    grade: str
    category: str
    channel: str
    complainant: PersonPublic | None
    description: str
    state: str
    team: str | None
    assignee: str | None
    opened_at: datetime
    answer_by: datetime
    answered_at: datetime | None
    answer: str | None
    closed_at: datetime | None
    resolution: str | None
    close_reason: str | None
    rework_count: int
    overdue: bool
    work_order_id: int | None
    created_by: str
    updated_at: datetime


class ComplaintVisit(BaseModel):
    id: int
    at: datetime
    actor: str
    channel: str
    outcome: str
    opinion: str | None
    satisfaction: int | None
    checked_by: str | None
    checked_at: datetime | None
    check_result: str | None


class ComplaintDetail(ComplaintPublic):
    history: list[HistoryEntry]
    follow_ups: list[ComplaintVisit]


class ComplaintAssign(BaseModel):
    """The team that deals with it (责成相应班组), and optionally a person."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"team": "秩序部", "assignee": "sec-wang", "note": "talk to the decorator at 2-1603"}]})

    team: ShortText
    assignee: ShortText | None = None
    note: Text | None = None


class ComplaintAnswer(BaseModel):
    """What the complainant was told (the remedy and when)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"answer": "已约谈装修方, 施工时间限于 8:00-12:00, 14:00-18:00"}]})

    answer: Description


class ComplaintRework(BaseModel):
    """Why the complaint goes back to be handled again."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "complainant says the noise continued last night"}]})

    note: Description


class ComplaintClose(BaseModel):
    """Closing as handled (the complainant accepted the answer) or as not valid (a reason)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"resolution": "handled"},
        {"resolution": "invalid", "reason": "the noise came from outside the estate"}]})

    resolution: Literal["handled", "invalid"]
    reason: Text | None = Field(default=None, description="required when invalid")


def public(record: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A complaint as the caller may see it: the complainant nested, masked for non-handlers."""
    out = complaints.for_role(record, principal.role)
    person = {"name": out.pop("complainant_name", None),
              "unit": out.pop("complainant_unit", None),
              "phone": out.pop("complainant_phone", None)}
    out["complainant"] = person if any(person.values()) else None
    return out


@router.post("", response_model=ComplaintPublic, status_code=201)
def create_complaint(body: ComplaintCreate, conn: Db, principal: Registrar,
                     clock: ClockDep) -> dict[str, Any]:
    """Register a complaint: numbered TS-<year>-<4 digits> per site and year, answer due."""
    check_write_site(principal, body.site)
    record = complaints.create(
        conn, site_id=body.site, grade=body.grade, category=body.category,
        channel=body.channel, description=body.description,
        complainant=complaints.Complainant(**body.complainant.model_dump()), now=clock(),
        actor=principal.actor)
    return public(record, principal)


@router.get("", response_model=Page[ComplaintPublic])
def list_complaints(conn: Db, principal: Reader, page: PagingDep, site: Ident | None = None,
                    state: State | None = None, grade: Grade | None = None,
                    category: Category | None = None, overdue: bool | None = None,
                    since: Annotated[When | None,
                                     Query(description="opened at or after")] = None,
                    until: Annotated[When | None, Query(description="opened before")] = None,
                    ) -> dict[str, Any]:
    """Complaints, newest first, with filters."""
    items, total = complaints.list_complaints(
        conn, filters={"site": site, "state": state, "grade": grade, "category": category,
                       "overdue": overdue},
        scope=scoped_site(principal, site), since=since, until=until, limit=page.limit,
        offset=page.offset)
    return page.answer([public(item, principal) for item in items], total)


@router.get("/{complaint_id}", response_model=ComplaintDetail)
def get_complaint(complaint_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One complaint with its history and its follow-up visits."""
    return public(complaints.get_complaint(conn, complaint_id, scope=principal.site_id),
                  principal)


@router.post("/{complaint_id}/assign", response_model=ComplaintPublic)
def assign_complaint(complaint_id: int, body: ComplaintAssign, conn: Db,
                     principal: Dispatcher, clock: ClockDep) -> dict[str, Any]:
    """Hand a complaint to a team (and optionally a person)."""
    record = complaints.assign(conn, complaint_id, team=body.team, assignee=body.assignee,
                               note=body.note, actor=principal.actor, now=clock(),
                               scope=principal.site_id)
    return public(record, principal)


@router.post("/{complaint_id}/answer", response_model=ComplaintPublic)
def answer_complaint(complaint_id: int, body: ComplaintAnswer, conn: Db, principal: Answerer,
                     clock: ClockDep) -> dict[str, Any]:
    """Record the answer given to the complainant (the first one meets answer_by)."""
    record = complaints.answer(conn, complaint_id, text=body.answer, actor=principal.actor,
                               now=clock(), scope=principal.site_id)
    return public(record, principal)


@router.post("/{complaint_id}/rework", response_model=ComplaintPublic)
def rework_complaint(complaint_id: int, body: ComplaintRework, conn: Db, principal: Reworker,
                     clock: ClockDep) -> dict[str, Any]:
    """Send an answered or closed complaint back to be handled again."""
    record = complaints.rework(conn, complaint_id, note=body.note, actor=principal.actor,
                               now=clock(), scope=principal.site_id)
    return public(record, principal)


@router.post("/{complaint_id}/close", response_model=ComplaintPublic)
def close_complaint(complaint_id: int, body: ComplaintClose, conn: Db, principal: Closer,
                    clock: ClockDep) -> dict[str, Any]:
    """Close as handled (after an answer) or as not valid with a reason (supervisors only)."""
    if body.resolution == "invalid" and not complaints.may(principal.role, "close_invalid"):
        raise ApiError(403, f"role {principal.role!r} may not close a complaint as not valid",
                       code="forbidden")
    record = complaints.close(conn, complaint_id, resolution=body.resolution,
                              reason=body.reason, actor=principal.actor, now=clock(),
                              scope=principal.site_id)
    return public(record, principal)
