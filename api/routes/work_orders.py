"""Work orders: fault tickets with deadlines; list, read, move along the lifecycle, assign."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.resource import Page, PagingDep, When
from caretaker.tokens import Principal
from tickets import work_orders as wo

router = APIRouter(prefix="/work-orders", tags=["work orders"])

# Engineers work tickets; closing and cancelling (with the follow-up visit) is a supervisor's.
Worker = Annotated[Principal, Depends(require("supervisor", "engineer"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]
State = Literal["open", "acknowledged", "in_progress", "resolved", "closed", "cancelled"]
Severity = Literal["critical", "major", "minor", "warning"]


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
    followup_contact: str | None
    followup_result: str | None
    satisfaction: int | None
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


class FollowUpVisit(BaseModel):
    """The follow-up visit (回访) with the person who reported or suffered the fault."""

    model_config = ConfigDict(extra="forbid")

    contact: str = Field(min_length=1)
    result: str = Field(min_length=1)
    satisfaction: int = Field(ge=1, le=5)


class WorkOrderClose(BaseModel):
    """Closing: with the follow-up visit after resolution, otherwise with a reason."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"followup": {"contact": "Ms Chen, unit 12-03", "result": "water pressure fine",
                      "satisfaction": 5}},
        {"note": "duplicate of work order 41"}]})

    note: str | None = Field(default=None, description="required when not resolved first")
    followup: FollowUpVisit | None = None


class WorkOrderAssign(BaseModel):
    """Who takes the ticket."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"assignee": "eng-zhao", "note": "pump room key at the front desk"}]})

    assignee: str = Field(min_length=1)
    note: str | None = None


@router.get("", response_model=Page[WorkOrderPublic])
def list_work_orders(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                     device: str | None = None, state: State | None = None,
                     severity: Severity | None = None, rule: str | None = None,
                     source: str | None = None, assignee: str | None = None,
                     overdue: bool | None = None,
                     since: Annotated[When | None,
                                      Query(description="opened at or after")] = None,
                     until: Annotated[When | None, Query(description="opened before")] = None,
                     ) -> dict[str, Any]:
    """Work orders, newest first, with filters."""
    items, total = wo.list_work_orders(
        conn, filters={"site": site, "device": device, "state": state, "severity": severity,
                       "rule": rule, "source": source, "assignee": assignee,
                       "overdue": overdue},
        scope=scoped_site(principal, site), since=since, until=until, limit=page.limit,
        offset=page.offset)
    return page.answer(items, total)


@router.get("/{wo_id}", response_model=WorkOrderDetail)
def get_work_order(wo_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One work order with its history, escalations and linked faults."""
    return wo.get_work_order(conn, wo_id, scope=principal.site_id)


def _step(action: str, conn: Any, wo_id: int, principal: Principal, now: datetime,
          note: str | None, followup: FollowUpVisit | None = None) -> dict[str, Any]:
    return wo.transition(conn, wo_id, action, actor=principal.actor, now=now, note=note,
                         followup=wo.FollowUp(**followup.model_dump()) if followup else None,
                         scope=principal.site_id)


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
def close_work_order(wo_id: int, body: WorkOrderClose, conn: Db, principal: Supervisor,
          clock: ClockDep) -> dict[str, Any]:
    """Close a ticket: after resolution with the follow-up visit, otherwise with a reason."""
    return _step("close", conn, wo_id, principal, clock(), body.note, body.followup)


@router.post("/{wo_id}/cancel", response_model=WorkOrderPublic)
def cancel_work_order(wo_id: int, body: WorkOrderStep, conn: Db, principal: Supervisor,
           clock: ClockDep) -> dict[str, Any]:
    """Cancel a ticket that needs no repair (a note says why)."""
    return _step("cancel", conn, wo_id, principal, clock(), body.note)


@router.post("/{wo_id}/assign", response_model=WorkOrderPublic)
def assign_work_order(wo_id: int, body: WorkOrderAssign, conn: Db, principal: Worker,
           clock: ClockDep) -> dict[str, Any]:
    """Give a ticket to a person."""
    return wo.assign(conn, wo_id, body.assignee, actor=principal.actor, now=clock(),
                     note=body.note, scope=principal.site_id)
