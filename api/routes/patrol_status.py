"""A site's patrol picture right now: runs under way, next due, open gaps, unknown tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ClockDep, Db, Reader, check_site
from api.patrol import own_guard
from api.resource import PagingDep
from api.routes.runs import GapPublic, RunPublic
from rules.patrol import queries

router = APIRouter(prefix="/sites", tags=["patrol"])


class UnknownTag(BaseModel):
    tag: str
    scans: int
    last_seen: datetime


class NextDue(BaseModel):
    schedule_id: str
    route_id: str
    route_name: str | None
    guard_id: str | None
    post: str | None
    planned_start: datetime
    run_id: int | None   # null while the run is beyond the planning horizon


class PatrolStatus(BaseModel):
    site_id: str
    timezone: str
    now: datetime
    in_progress: list[RunPublic]
    next_due: list[NextDue]
    open_gaps: list[GapPublic]      # one page (limit, offset), newest first
    open_gap_count: int             # all open gaps: page on with offset
    limit: int
    offset: int
    unknown_tags: list[UnknownTag]


@router.get("/{site}/patrol-status", response_model=PatrolStatus)
def patrol_status(site: str, conn: Db, principal: Reader, clock: ClockDep, page: PagingDep
                  ) -> dict[str, Any]:
    """Runs in progress, the next run of each schedule, open gaps (paged by limit/offset:
    every one can be reached), unknown tags (7 days). Acknowledged gaps are not open."""
    check_site(principal, site)
    return queries.patrol_status(conn, site, guard=own_guard(principal), now=clock(),
                                 limit=page.limit, offset=page.offset)
