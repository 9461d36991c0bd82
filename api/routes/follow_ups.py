"""Follow-up visits (回访): record attempts on a ticket, the follow-up queue, spot checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.resource import Page, PagingDep, When
from caretaker.ids import Ident
from caretaker.privacy import masked, may_see_personal
from caretaker.site_config import Text
from caretaker.tokens import Principal
from tickets import follow_ups
from tickets.follow_ups import Kind

router = APIRouter(tags=["follow-ups"])

# 物业管家 (front desk), engineers and supervisors make the visits; supervisors spot-check them.
Visitor = Annotated[Principal, Depends(require("frontdesk", "supervisor", "engineer"))]
Supervisor = Annotated[Principal, Depends(require("supervisor"))]
Filter = Annotated[Ident | None, Query()]
TicketId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class FollowUpCreate(BaseModel):
    """One attempt to visit or call the resident: satisfaction 1-5 exactly when reached."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "unreachable", "channel": "phone", "opinion": "no answer, will call again"},
        {"outcome": "reached", "channel": "phone", "satisfaction": 5,
         "opinion": "tap fixed, no more leaks"},
        {"outcome": "reached", "channel": "visit", "satisfaction": 2,
         "opinion": "still dripping at night"}]})

    outcome: Literal["reached", "unreachable", "refused"]
    channel: Literal["phone", "visit", "app", "wechat"]
    opinion: Text | None = None
    satisfaction: int | None = Field(default=None, ge=1, le=5, description=(
        "1 (very dissatisfied) to 5 (very satisfied); required when reached, else absent"))

    @model_validator(mode="after")
    def _fits_outcome(self) -> FollowUpCreate:
        follow_ups.check_attempt(self.outcome, self.satisfaction)
        return self


class FollowUpPublic(BaseModel):
    id: int
    site_id: str
    work_order_id: int | None
    complaint_id: int | None
    at: datetime
    actor: str
    channel: str
    outcome: str
    opinion: str | None
    satisfaction: int | None
    checked_by: str | None
    checked_at: datetime | None
    check_result: str | None
    check_note: str | None


class FollowUpRecorded(FollowUpPublic):
    """A recorded attempt, what it counts as, and what follows from it."""

    attempt: int = Field(description="this attempt's number since the work was last done")
    next_attempt_at: datetime | None = Field(description=(
        "when an unreachable resident is to be tried again (null: no retry)"))
    reworked: bool = Field(description="the resident was dissatisfied: the work was sent back")


class SpotCheck(BaseModel):
    """A supervisor's spot check (三级抽查) of a visit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"result": "confirmed", "note": "called back, resident confirms the visit"},
        {"result": "not_confirmed", "note": "resident says nobody called"}]})

    result: Literal["confirmed", "not_confirmed"]
    note: Text | None = None


class QueueItem(BaseModel):
    """A ticket whose follow-up visit is pending."""

    kind: Kind
    id: int
    site_id: str
    number: str | None = Field(description="a complaint's number")
    title: str
    category: str
    contact_name: str | None
    contact_unit: str | None
    contact_phone: str | None
    state: str
    rework_count: int
    done_at: datetime = Field(description="when the work was last resolved (answered)")
    attempts: int = Field(description="unreachable attempts since then")
    last_at: datetime | None = Field(description="the last attempt")
    due_at: datetime = Field(description="when the next attempt is due")
    visit_by: datetime = Field(description="when the visit becomes late")
    overdue: bool


def _record(kind: Kind, ticket_id: int, body: FollowUpCreate, conn: Any, principal: Principal,
            now: datetime) -> dict[str, Any]:
    return follow_ups.record(conn, kind, ticket_id, actor=principal.actor, now=now,
                             channel=body.channel, outcome=body.outcome, opinion=body.opinion,
                             satisfaction=body.satisfaction, scope=principal.site_id)


@router.post("/work-orders/{wo_id}/follow-ups", response_model=FollowUpRecorded,
             status_code=201)
def record_work_order_follow_up(wo_id: TicketId, body: FollowUpCreate, conn: Db,
                                principal: Visitor, clock: ClockDep) -> dict[str, Any]:
    """Record a visit attempt on a resolved or closed work order (dissatisfied: rework)."""
    return _record("work_order", wo_id, body, conn, principal, clock())


@router.post("/complaints/{complaint_id}/follow-ups", response_model=FollowUpRecorded,
             status_code=201)
def record_complaint_follow_up(complaint_id: TicketId, body: FollowUpCreate, conn: Db,
                               principal: Visitor, clock: ClockDep) -> dict[str, Any]:
    """Record a visit attempt on an answered or closed complaint (dissatisfied: rework)."""
    return _record("complaint", complaint_id, body, conn, principal, clock())


@router.get("/work-orders/{wo_id}/follow-ups", response_model=Page[FollowUpPublic])
def list_work_order_follow_ups(wo_id: TicketId, conn: Db, principal: Reader,
                               page: PagingDep) -> dict[str, Any]:
    """A work order's visit attempts, oldest first."""
    items, total = follow_ups.visits(conn, "work_order", wo_id, scope=principal.site_id,
                                     limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/complaints/{complaint_id}/follow-ups", response_model=Page[FollowUpPublic])
def list_complaint_follow_ups(complaint_id: TicketId, conn: Db, principal: Reader,
                              page: PagingDep) -> dict[str, Any]:
    """A complaint's visit attempts, oldest first."""
    items, total = follow_ups.visits(conn, "complaint", complaint_id, scope=principal.site_id,
                                     limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/follow-ups", response_model=Page[QueueItem])
def follow_up_queue(conn: Db, principal: Reader, page: PagingDep, clock: ClockDep,
                    site: Filter = None,
                    due: Annotated[bool | None, Query(description=(
                        "true: the next attempt is due now; false: waiting for a retry"))] = None,
                    overdue: Annotated[bool | None, Query(description=(
                        "true: past the policy's due_within since the work was done"))] = None,
                    kind: Kind | None = None) -> dict[str, Any]:
    """The follow-up queue: tickets whose visit is pending under the site's policy, the
    longest due first. Residents' names and phones are masked for roles that do not
    handle tickets."""
    items, total = follow_ups.queue(conn, scope=scoped_site(principal, site), now=clock(),
                                    due=due, overdue=overdue, kind=kind, limit=page.limit,
                                    offset=page.offset)
    if not may_see_personal(principal.role):
        items = [masked(i, names=("contact_name",), phones=("contact_phone",)) for i in items]
    return page.answer(items, total)


@router.get("/follow-ups/visits", response_model=Page[FollowUpPublic])
def list_follow_up_visits(conn: Db, principal: Reader, page: PagingDep, site: Filter = None,
                          outcome: Literal["reached", "unreachable", "refused"] | None = None,
                          checked: Annotated[bool | None, Query(description=(
                              "false: not spot-checked yet"))] = None,
                          actor: Annotated[str | None, Query(max_length=200)] = None,
                          since: Annotated[When | None, Query(description="at or after")] = None,
                          until: Annotated[When | None, Query(description="before")] = None,
                          ) -> dict[str, Any]:
    """Visit attempts across tickets, newest first (e.g. those to spot-check)."""
    items, total = follow_ups.list_visits(
        conn, filters={"site": site, "outcome": outcome, "actor": actor},
        scope=scoped_site(principal, site), checked=checked, since=since, until=until,
        limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.post("/follow-ups/{visit_id}/check", response_model=FollowUpPublic)
def check_follow_up(visit_id: TicketId, body: SpotCheck, conn: Db, principal: Supervisor,
                    clock: ClockDep) -> dict[str, Any]:
    """Record a supervisor's spot check of a visit (once per visit, not by its visitor)."""
    return follow_ups.spot_check(conn, visit_id, actor=principal.actor, now=clock(),
                                 result=body.result, note=body.note, scope=principal.site_id)
