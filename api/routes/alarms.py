"""Alarms: one per (device, rule) while active; list, read, acknowledge and clear them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.resource import Page, PagingDep, When
from caretaker.tokens import Principal
from rules import alarms

router = APIRouter(prefix="/alarms", tags=["alarms"])

Handler = Annotated[Principal, Depends(require("supervisor", "engineer"))]
Severity = Literal["critical", "major", "minor", "warning"]
State = Literal["active", "acknowledged", "cleared"]


class AlarmPublic(BaseModel):
    id: int
    site_id: str
    device_id: str
    rule_id: str
    severity: str = Field(description="the current level's severity (rises and falls)")
    peak_severity: str = Field(description="the worst severity reached (never falls)")
    state: str
    message: str
    metric: str | None
    first_value: float | None
    last_value: float | None
    count: int
    raised_at: datetime
    last_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    suppressed_by: str | None
    suppression_ended_at: datetime | None
    work_order_id: int | None
    verification: str | None = Field(default=None, description=(
        "its verification by a guard: open, confirmed, false_alarm, not_verified (null: none)"))


class AlarmEvent(BaseModel):
    at: datetime
    action: str
    actor: str
    note: str | None


class AlarmDetail(AlarmPublic):
    history: list[AlarmEvent]


class AlarmAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = None


@router.get("", response_model=Page[AlarmPublic])
def list_alarms(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                device: str | None = None, severity: Severity | None = None,
                peak_severity: Severity | None = None,
                state: State | None = None, rule: str | None = None,
                since: Annotated[When | None, Query(description="raised at or after")] = None,
                until: Annotated[When | None, Query(description="raised before")] = None,
                ) -> dict[str, Any]:
    """Alarms, newest first, filtered by site, device, severity (now or peak), state, rule, time."""
    items, total = alarms.list_alarms(
        conn, filters={"site": site, "device": device, "severity": severity, "state": state,
                       "rule": rule, "peak_severity": peak_severity},
        scope=scoped_site(principal, site), since=since, until=until, limit=page.limit,
        offset=page.offset)
    return page.answer(items, total)


@router.get("/{alarm_id}", response_model=AlarmDetail)
def get_alarm(alarm_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One alarm with its history."""
    return alarms.get_alarm(conn, alarm_id, scope=principal.site_id)


@router.post("/{alarm_id}/acknowledge", response_model=AlarmPublic)
def acknowledge_alarm(alarm_id: int, body: AlarmAction, conn: Db, principal: Handler,
                clock: ClockDep) -> dict[str, Any]:
    """Acknowledge an active alarm."""
    return alarms.acknowledge(conn, alarm_id, actor=principal.actor, now=clock(),
                              note=body.note, scope=principal.site_id)


@router.post("/{alarm_id}/clear", response_model=AlarmPublic)
def clear_alarm(alarm_id: int, body: AlarmAction, conn: Db, principal: Handler,
          clock: ClockDep) -> dict[str, Any]:
    """Clear an alarm by hand (its rule may raise it again if the fault persists)."""
    return alarms.clear_by_hand(conn, alarm_id, actor=principal.actor, now=clock(),
                                note=body.note, scope=principal.site_id)
