"""Maintenance windows: periods when a device or a whole site raises no tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.resource import Page, PagingDep, When, check_write_site
from caretaker.errors import Conflict, Invalid
from caretaker.ids import Ident
from caretaker.site_config import Text
from caretaker.tokens import Principal
from rules import maintenance
from rules.maintenance import MaintenanceWindow, WindowNotFound

# A PATCH field's default: absent leaves the value, an explicit null is refused.
UNSET: Any = None

router = APIRouter(prefix="/maintenance-windows", tags=["alarms"])

Editor = Annotated[Principal, Depends(require("supervisor", "engineer"))]
Filter = Annotated[Ident | None, Query()]


class WindowUpdate(BaseModel):
    """The fields of a window to change; times, when given, may not be null."""

    model_config = ConfigDict(extra="forbid")

    device_id: Ident | None = Field(default=UNSET, description="null: the whole site")
    starts_at: datetime = Field(default=UNSET)
    ends_at: datetime = Field(default=UNSET)
    reason: Text = Field(default=UNSET, min_length=1)


class WindowPublic(BaseModel):
    site_id: str
    id: str
    device_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str | None
    created_at: datetime


@router.get("", response_model=Page[WindowPublic])
def list_windows(conn: Db, principal: Reader, page: PagingDep, site: Filter = None,
                 device: Filter = None, active_at: When | None = None) -> dict[str, Any]:
    """Maintenance windows, optionally only those open at `active_at`."""
    items, total = maintenance.list_windows(conn, site=site, device=device, active_at=active_at,
                                            scope=scoped_site(principal, site),
                                            limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{window_id}", response_model=WindowPublic)
def get_window(site: Ident, window_id: Ident, conn: Db, principal: Reader) -> dict[str, Any]:
    """One maintenance window."""
    check_site(principal, site)
    row = maintenance.get_window(conn, site, window_id)
    if row is None:
        raise WindowNotFound(f"maintenance window {window_id!r} not found")
    return row


@router.post("", response_model=WindowPublic, status_code=201)
def create_window(body: MaintenanceWindow, conn: Db, principal: Editor,
                  clock: ClockDep) -> dict[str, Any]:
    """Put a device or a site under maintenance (`site_id` required; naive times: site time)."""
    if body.site_id is None:
        raise Invalid("site_id: required")
    check_write_site(principal, body.site_id)
    if body.id is not None and maintenance.get_window(conn, body.site_id, body.id):
        raise Conflict(f"maintenance window {body.id!r} exists already")
    return maintenance.upsert_window(
        conn, body.site_id, body.id,
        {**body.model_dump(exclude={"site_id", "id"}), "created_by": principal.actor},
        now=clock())


@router.patch("/{site}/{window_id}", response_model=WindowPublic)
def update_window(site: Ident, window_id: Ident, body: WindowUpdate, conn: Db,
                  principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Change a window's device, times or reason (end it early, say)."""
    check_site(principal, site)
    return maintenance.update_window(conn, site, window_id, body.model_dump(exclude_unset=True),
                                     now=clock())


@router.delete("/{site}/{window_id}", status_code=204)
def delete_window(site: Ident, window_id: Ident, conn: Db, principal: Editor) -> Response:
    """Remove a window."""
    check_site(principal, site)
    if not maintenance.delete_window(conn, site, window_id):
        raise WindowNotFound(f"maintenance window {window_id!r} not found")
    return Response(status_code=204)
