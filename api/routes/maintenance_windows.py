"""Maintenance windows: periods when a device or a whole site raises no tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import ApiError, not_found
from api.resource import Ident, Page, PagingDep, check_write_site, refusals
from caretaker.tokens import Principal
from rules import maintenance
from rules.model import RuleError

router = APIRouter(prefix="/maintenance-windows", tags=["alarms"])

Editor = Annotated[Principal, Depends(require("supervisor", "engineer"))]


class WindowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: Ident
    id: Ident | None = None
    device_id: Ident | None = Field(default=None, description="null: the whole site")
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(min_length=1)


class WindowUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Ident | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    reason: str | None = Field(default=None, min_length=1)


class WindowPublic(BaseModel):
    site_id: str
    id: str
    device_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str | None
    created_at: datetime


def _aware(when: datetime) -> None:
    if when.tzinfo is None:
        raise ApiError(422, "times need a UTC offset, e.g. 2026-11-24T09:00:00+08:00")


@router.get("", response_model=Page[WindowPublic])
def list_windows(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                 device: str | None = None, active_at: datetime | None = None) -> dict[str, Any]:
    """Maintenance windows, optionally only those open at `active_at`."""
    items, total = maintenance.list_windows(conn, site=site, device=device, active_at=active_at,
                                            scope=scoped_site(principal, site),
                                            limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{window_id}", response_model=WindowPublic)
def get_window(site: str, window_id: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One maintenance window."""
    check_site(principal, site)
    row = maintenance.get_window(conn, site, window_id)
    if row is None:
        raise not_found(f"maintenance window {window_id!r}")
    return row


@router.post("", response_model=WindowPublic, status_code=201)
def create_window(body: WindowCreate, conn: Db, principal: Editor,
                  clock: ClockDep) -> dict[str, Any]:
    """Put a device or a site under maintenance for a while."""
    check_write_site(principal, body.site_id)
    _aware(body.starts_at)
    _aware(body.ends_at)
    if body.id is not None and maintenance.get_window(conn, body.site_id, body.id):
        raise ApiError(409, f"maintenance window {body.id!r} exists already")
    with refusals(RuleError):
        return maintenance.upsert_window(
            conn, body.site_id, body.id,
            {**body.model_dump(exclude={"site_id", "id"}), "created_by": principal.actor},
            now=clock())


@router.patch("/{site}/{window_id}", response_model=WindowPublic)
def update_window(site: str, window_id: str, body: WindowUpdate, conn: Db, principal: Editor,
                  clock: ClockDep) -> dict[str, Any]:
    """Change a window's device, times or reason (end it early, say)."""
    check_site(principal, site)
    changes = body.model_dump(exclude_unset=True)
    for key in ("starts_at", "ends_at"):
        if changes.get(key) is not None:
            _aware(changes[key])
    with refusals(RuleError):
        return maintenance.update_window(conn, site, window_id, changes, now=clock())


@router.delete("/{site}/{window_id}", status_code=204)
def delete_window(site: str, window_id: str, conn: Db, principal: Editor) -> Response:
    """Remove a window."""
    check_site(principal, site)
    if not maintenance.delete_window(conn, site, window_id):
        raise not_found(f"maintenance window {window_id!r}")
    return Response(status_code=204)
