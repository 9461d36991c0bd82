"""Alarm verifications: the guard sent to look at an alarm, and what they found."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.patrol import own_guard
from api.resource import Page, PagingDep
from caretaker.tokens import Principal
from rules import verification_store

router = APIRouter(prefix="/verifications", tags=["verifications"])

Verifier = Annotated[Principal, Depends(require("supervisor", "guard"))]
State = Literal["open", "confirmed", "false_alarm", "not_verified"]


class VerificationItem(BaseModel):
    id: int
    alarm_id: int
    checkpoint_id: str | None = Field(description="where to look")
    checkpoint_name: str | None
    due_by: datetime
    title: str
    guard_id: str | None = Field(description="the guard sent (null: nobody was on duty)")
    state: str = Field(description="open, confirmed, false_alarm or not_verified")


class VerificationDetail(VerificationItem):
    site_id: str
    rule_id: str
    device_id: str
    run_id: int | None = Field(description="the guard's patrol run under way when sent")
    from_checkpoint: str | None = Field(description="the guard's last scan when sent")
    distance: float | None = Field(description="metres from there (given, or zone estimate)")
    basis: str | None = Field(description="distances, zones or unknown")
    requested_at: datetime
    result_at: datetime | None
    result_by: str | None
    scan_id: str | None
    note: str | None
    work_order_id: int | None


class VerificationResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: Literal["confirmed", "false_alarm"]
    note: str | None = Field(default=None, max_length=4000)


@router.get("", response_model=Page[VerificationItem])
def list_verifications(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                       state: State | None = None, guard: str | None = None,
                       alarm: int | None = None) -> dict[str, Any]:
    """Verifications, due soonest first (?site=S&state=open: what is waiting); a guard sees
    only their own."""
    items, total = verification_store.list_verifications(
        conn, scope=scoped_site(principal, site), site=site, state=state,
        guard=own_guard(principal) or guard, alarm=alarm, limit=page.limit,
        offset=page.offset)
    return page.answer(items, total)


@router.get("/{verification_id}", response_model=VerificationDetail)
def get_verification(verification_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One verification with its result, the guard's position when sent, its work order."""
    row = verification_store.get_verification(conn, verification_id, scope=principal.site_id,
                                              guard=own_guard(principal))
    return {**row, "scan_id": str(row["scan_id"]) if row["scan_id"] else None}


@router.post("/{verification_id}/result", response_model=VerificationDetail)
def record_result(verification_id: int, body: VerificationResult, conn: Db,
                  principal: Verifier, clock: ClockDep) -> dict[str, Any]:
    """Record what the guard found: confirmed (a work order opens) or false_alarm; 409 once
    it has a result (or was escalated as not_verified). A guard records only their own."""
    guard = own_guard(principal)
    verification_store.get_verification(conn, verification_id, scope=principal.site_id,
                                        guard=guard)  # 404 for another guard's
    verification_store.record_result(
        conn, verification_id, body.result, now=clock(),
        actor=f"guard:{guard}" if guard else principal.actor,
        note=body.note, scope=principal.site_id, guard=guard)
    return get_verification(verification_id, conn, principal)
