"""Work orders: fault and manual tickets with deadlines; open, list, read, move along, assign."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.resource import Page, PagingDep, When, check_write_site
from caretaker.ids import Ident
from caretaker.site_config import NO_NUL, ShortText, Text
from caretaker.tokens import Principal
from tickets import work_orders as wo

router = APIRouter(prefix="/work-orders", tags=["work orders"])


def _roles(action: str) -> Any:
    """The dependency admitting the roles that may take this step on some ticket."""
    return Depends(require(*wo.ROLES[action]))


# Which role may do what is tickets.work_orders.ROLES; the front desk is further limited to the
# tickets it takes in (manual, complaint) once the ticket is read.
Creator = Annotated[Principal, _roles("create")]
Worker = Annotated[Principal, _roles("acknowledge")]
Dispatcher = Annotated[Principal, _roles("assign")]
Closer = Annotated[Principal, _roles("close")]
State = Literal["open", "acknowledged", "in_progress", "resolved", "closed", "cancelled"]
Severity = Literal["critical", "major", "minor", "warning"]
Source = Literal["alarm", "inspection", "patrol", "manual", "complaint", "preventive",
                 "calibration", "verification"]
Category = Literal["公区维修", "居家维修", "整改", "设备", "其他"]
Urgency = Literal["急修", "零修"]
Channel = Literal["phone", "wechat", "front_desk", "console", "app"]
PersonName = Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=64)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{2,30}$")]


class Person(BaseModel):
    """Who reported it (报事人) or who complains: name, unit/room (房号), phone."""

    model_config = ConfigDict(extra="forbid")

    name: PersonName | None = None
    unit: PersonName | None = Field(default=None, description="unit/room (房号), e.g. 3-1201")
    phone: Phone | None = None


class PersonPublic(BaseModel):
    """A person as the caller may see them (name and phone masked outside the handlers)."""

    name: str | None
    unit: str | None
    phone: str | None


class WorkOrderCreate(BaseModel):
    """A manual ticket (报事报修): what, where, how urgent, who reported it and how."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"site": "riverside", "category": "公区维修", "urgency": "急修",
         "reporter": {"name": "陈女士", "unit": "3-1201", "phone": "13812345678"},
         "channel": "phone", "zone": "b3", "description": "B3 车库入口积水, 排水沟堵塞"},
        {"site": "riverside", "category": "居家维修", "urgency": "零修",
         "reporter": {"name": "Mr Zhou", "unit": "5-802", "phone": "13900001111"},
         "channel": "wechat", "description": "kitchen tap drips; resident home after 18:00"}]})

    site: Ident
    category: Category = Field(description="公区维修 common-area repair, 居家维修 in-home repair "
                               "(a paid service), 整改 rectification, 设备 equipment, 其他 other")
    urgency: Urgency = Field(description="急修 urgent / 零修 routine: sets the deadlines")
    reporter: Person = Field(default_factory=Person)
    channel: Channel
    zone: Ident | None = None
    checkpoint: Ident | None = None
    device: Ident | None = None
    title: ShortText | None = Field(default=None, description="default: category and the "
                                    "description's first line")
    description: Annotated[Text, StringConstraints(min_length=1)]


class WorkOrderPublic(BaseModel):
    id: int
    site_id: str
    device_id: str | None
    rule_id: str | None
    alarm_id: int | None
    source: str
    source_ref: str | None
    severity: str
    priority: int
    category: str
    urgency: str | None
    channel: str | None
    reporter: PersonPublic | None
    zone_id: str | None
    checkpoint_id: str | None
    title: str
    description: str
    state: str
    assignee: str | None
    opened_at: datetime
    respond_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None
    started_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    overdue: bool
    alarm_cleared_at: datetime | None
    repeat_of: int | None
    repeat_count: int
    rework_count: int
    updated_at: datetime


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    from_state: str | None
    to_state: str | None
    actor: str
    note: str | None


class Escalation(BaseModel):
    deadline: str
    level: int = Field(description="0: the deadline passed (overdue); 1..n: the ladder's levels")
    due_at: datetime
    escalated_at: datetime


class FaultRef(BaseModel):
    source: str
    source_ref: str
    at: datetime


class WorkOrderDetail(WorkOrderPublic):
    history: list[HistoryEntry]
    escalations: list[Escalation]
    faults: list[FaultRef]


class WorkOrderStep(BaseModel):
    """A transition's body: an optional note for the ticket's history."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "on my way, ETA 20 minutes"}, {"note": "seal replaced, pressure back to 0.45"},
        {}]})

    note: str | None = None


class WorkOrderClose(BaseModel):
    """Closing: after resolution as it is, otherwise with a reason."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {}, {"note": "resident confirmed by phone"}, {"note": "duplicate of work order 41"}]})

    note: str | None = Field(default=None, description="required when not resolved first")


class WorkOrderAssign(BaseModel):
    """Who takes the ticket."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"assignee": "eng-zhao", "note": "pump room key at the front desk"}]})

    assignee: str = Field(min_length=1)
    note: str | None = None


def public(row: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A ticket row as the caller may see it: the reporter nested, masked for non-handlers."""
    out = wo.for_role(row, principal.role)
    person = {"name": out.pop("reporter_name", None), "unit": out.pop("reporter_unit", None),
              "phone": out.pop("reporter_phone", None)}
    out["reporter"] = person if any(person.values()) else None
    return out


@router.post("", response_model=WorkOrderPublic, status_code=201)
def create_work_order(body: WorkOrderCreate, conn: Db, principal: Creator,
                      clock: ClockDep) -> dict[str, Any]:
    """Open a manual ticket (报事报修); 422 for a zone, checkpoint or device not the site's."""
    check_write_site(principal, body.site)
    reporter = wo.Person(**body.reporter.model_dump())
    row = wo.open_manual(conn, site_id=body.site, category=body.category, urgency=body.urgency,
                         channel=body.channel, description=body.description, reporter=reporter,
                         now=clock(), actor=principal.actor, title=body.title,
                         zone_id=body.zone, checkpoint_id=body.checkpoint, device_id=body.device)
    return public(row, principal)


@router.get("", response_model=Page[WorkOrderPublic])
def list_work_orders(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                     device: str | None = None, state: State | None = None,
                     severity: Severity | None = None, rule: str | None = None,
                     source: Source | None = None, category: Category | None = None,
                     urgency: Urgency | None = None, channel: Channel | None = None,
                     assignee: str | None = None, overdue: bool | None = None,
                     since: Annotated[When | None,
                                      Query(description="opened at or after")] = None,
                     until: Annotated[When | None, Query(description="opened before")] = None,
                     ) -> dict[str, Any]:
    """Work orders, newest first, with filters."""
    items, total = wo.list_work_orders(
        conn, filters={"site": site, "device": device, "state": state, "severity": severity,
                       "rule": rule, "source": source, "category": category,
                       "urgency": urgency, "channel": channel, "assignee": assignee,
                       "overdue": overdue},
        scope=scoped_site(principal, site), since=since, until=until, limit=page.limit,
        offset=page.offset)
    return page.answer([public(item, principal) for item in items], total)


@router.get("/{wo_id}", response_model=WorkOrderDetail)
def get_work_order(wo_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One work order with its history, escalations and linked faults."""
    return public(wo.get_work_order(conn, wo_id, scope=principal.site_id), principal)


def _step(action: str, conn: Any, wo_id: int, principal: Principal, now: datetime,
          note: str | None) -> dict[str, Any]:
    row = wo.transition(conn, wo_id, action, actor=principal.actor, now=now, note=note,
                        scope=principal.site_id, role=principal.role)
    return public(row, principal)


@router.post("/{wo_id}/acknowledge", response_model=WorkOrderPublic)
def acknowledge_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Worker,
                           clock: ClockDep) -> dict[str, Any]:
    """Acknowledge an open ticket (this meets its response deadline)."""
    return _step("acknowledge", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/start", response_model=WorkOrderPublic)
def start_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Worker,
                     clock: ClockDep) -> dict[str, Any]:
    """Start work on an acknowledged ticket."""
    return _step("start", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/resolve", response_model=WorkOrderPublic)
def resolve_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Worker,
                       clock: ClockDep) -> dict[str, Any]:
    """Mark the repair done."""
    return _step("resolve", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/reopen", response_model=WorkOrderPublic)
def reopen_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Worker,
                      clock: ClockDep) -> dict[str, Any]:
    """Send a resolved ticket back to work (a note says why)."""
    return _step("reopen", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/close", response_model=WorkOrderPublic)
def close_work_order(wo_id: int, body: WorkOrderClose, conn: Db, principal: Closer,
                     clock: ClockDep) -> dict[str, Any]:
    """Close a ticket: after resolution as it is, otherwise with a reason.

    The follow-up visit is a record of its own (`/follow-ups`), not a field of closing.
    """
    return _step("close", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/cancel", response_model=WorkOrderPublic)
def cancel_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Closer,
                      clock: ClockDep) -> dict[str, Any]:
    """Cancel a ticket that needs no repair (a note says why)."""
    return _step("cancel", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/assign", response_model=WorkOrderPublic)
def assign_work_order(wo_id: int, body: WorkOrderAssign, conn: Db, principal: Dispatcher,
                      clock: ClockDep) -> dict[str, Any]:
    """Give a ticket to a person (派单)."""
    row = wo.assign(conn, wo_id, body.assignee, actor=principal.actor, now=clock(),
                    note=body.note, scope=principal.site_id, role=principal.role)
    return public(row, principal)
