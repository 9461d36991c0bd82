"""Route runs: each planned walk of a route, its visits and their classification."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Db, Reader, scoped_site
from api.patrol import own_guard
from api.resource import Day, Page, PagingDep, When
from rules.patrol import queries

router = APIRouter(prefix="/runs", tags=["patrol"])

RunStatus = Literal["scheduled", "in_progress", "complete", "incomplete", "missed"]


class GapPublic(BaseModel):
    id: int
    site_id: str
    route_id: str
    schedule_id: str
    run_id: int
    seq: int | None
    checkpoint_id: str | None
    checkpoint_name: str | None = None
    guard_id: str | None
    post: str | None
    kind: str
    window_start: datetime
    window_end: datetime
    detected_at: datetime
    status: str
    resolution: str | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None


class VisitPublic(BaseModel):
    seq: int
    checkpoint_id: str
    checkpoint_name: str | None
    equipment: bool
    due_at: datetime
    window_start: datetime
    window_end: datetime
    scan_id: UUID | None
    scan_time: datetime | None
    timing: str    # pending, early, on_time, late, missed
    status: str    # the timing, or out_of_order


class RunPublic(BaseModel):
    id: int
    site_id: str
    schedule_id: str
    route_id: str
    route_name: str | None
    guard_id: str | None
    post: str | None
    local_date: date
    planned_start: datetime
    start_deadline: datetime
    planned_end: datetime
    status: str
    flags: list[str]
    started_at: datetime | None
    finished_at: datetime | None
    final: bool
    ordered: bool
    visits_total: int
    visits_done: int
    open_gaps: int


class RunDetail(RunPublic):
    visits: list[VisitPublic]
    gaps: list[GapPublic]


@router.get("", response_model=Page[RunPublic])
def list_runs(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
              route: str | None = None, schedule: str | None = None,
              guard: str | None = None, day: Day | None = None,
              status: RunStatus | None = None, since: When | None = None,
              until: When | None = None) -> dict[str, Any]:
    """Runs by site, route, schedule, guard, local day (?day=2026-11-23) or status."""
    items, total = queries.list_runs(
        conn, scope=scoped_site(principal, site), guard=own_guard(principal), site=site,
        route=route, schedule=schedule, guard_id=guard, day=day, status=status,
        since=since, until=until, limit=page.limit, offset=page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: int, conn: Db, principal: Reader) -> dict[str, Any]:
    """One run with every visit and its classification, and its gaps."""
    return queries.get_run(conn, run_id, scope=principal.site_id,
                           guard=own_guard(principal))
