"""Inspection gaps: missed or late checkpoints, missed runs, lone-worker silences."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, require, scoped_site
from api.errors import ApiError
from api.patrol import own_guard
from api.resource import Page, PagingDep, When
from api.routes.runs import GapPublic
from caretaker.tokens import Principal
from rules.patrol import queries

router = APIRouter(prefix="/gaps", tags=["patrol"])

Supervisor = Annotated[Principal, Depends(require("supervisor"))]
GapKind = Literal["missed_checkpoint", "overdue_inspection", "missed_run", "lone_worker"]


class GapAcknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=4000)


@router.get("", response_model=Page[GapPublic])
def list_gaps(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
              route: str | None = None, guard: str | None = None,
              kind: GapKind | None = None,
              status: Literal["open", "acknowledged", "resolved"] | None = None,
              acknowledged: bool | None = None, run: int | None = None,
              since: When | None = None, until: When | None = None
              ) -> dict[str, Any]:
    """Gaps, newest first; since/until filter the detection time. status: open (standing, not
    yet acknowledged), acknowledged (standing, seen by a supervisor), resolved (a scan came)."""
    items, total = queries.list_gaps(
        conn, scope=scoped_site(principal, site), guard=own_guard(principal), site=site,
        route=route, guard_id=guard, kind=kind, status=status, acknowledged=acknowledged,
        run=run, since=since, until=until, limit=page.limit, offset=page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.post("/{gap_id}/acknowledge", response_model=GapPublic)
def acknowledge_gap(gap_id: int, body: GapAcknowledge, conn: Db, principal: Supervisor,
                    clock: ClockDep) -> dict[str, Any]:
    """Acknowledge a gap with a note (once; 409 if already acknowledged): an open gap becomes
    acknowledged and leaves the open list."""
    row = queries.acknowledge_gap(conn, gap_id, scope=principal.site_id,
                                  actor=principal.actor, note=body.note, now=clock())
    if row is None:
        raise ApiError(409, f"gap {gap_id} is already acknowledged")
    return row
