"""Schedules: when a route is walked, by which guard or post, in the site's time zone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import ApiError
from api.patrol import patrol_errors
from api.resource import Ident, Page, PagingDep, check_write_site
from caretaker.tokens import Principal
from rules.patrol import store
from rules.patrol.schedule import next_occurrence

router = APIRouter(prefix="/schedules", tags=["patrol"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Duration = Annotated[str | int, Field(description="20m, 2h, 1h30m, 90s or seconds")]
Kind = Literal["daily", "every", "weekly", "monthly"]


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(description="HH:MM local time")
    end: str = Field(description="HH:MM; at or before start: the window crosses midnight")


class Monthly(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: int | None = Field(default=None, description="1..31, or -1 for the last day")
    nth: int | None = Field(default=None, description="1..5, or -1 for the last")
    weekday: str | None = Field(default=None, description="mon..sun, with nth")


class ScheduleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: Ident
    kind: Kind
    guard: Ident | None = None
    post: str | None = None
    at: list[str] = Field(default_factory=list, description="HH:MM local times")
    every: Duration | None = None
    window: Window | None = None
    weekdays: list[str] = Field(default_factory=list)
    monthly: Monthly | None = None
    start_tolerance: Duration | None = None
    effective_from: date
    effective_until: date | None = None
    enabled: bool = True


class ScheduleCreate(ScheduleBase):
    site_id: Ident
    id: Ident


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: Ident | None = None
    kind: Kind | None = None
    guard: Ident | None = None
    post: str | None = None
    at: list[str] | None = None
    every: Duration | None = None
    window: Window | None = None
    weekdays: list[str] | None = None
    monthly: Monthly | None = None
    start_tolerance: Duration | None = None
    effective_from: date | None = None
    effective_until: date | None = None
    enabled: bool | None = None


class SchedulePublic(BaseModel):
    site_id: str
    id: str
    route: str
    kind: str
    guard: str | None
    post: str | None
    at: list[str]
    every: str | None
    window: Window | None
    weekdays: list[str]
    monthly: dict[str, Any] | None
    start_tolerance: str | None
    effective_from: date
    effective_until: date | None
    enabled: bool
    next_run: datetime | None = None
    created_at: datetime
    updated_at: datetime


def _public(conn: Db, stored: store.Stored, now: datetime) -> dict[str, Any]:
    out = stored.public()
    sched = store.load_schedule(stored.definition)
    out["next_run"] = next_occurrence(sched, store.site_timezone(conn, stored.site_id), now)
    return out


def _body(model: BaseModel, **kw: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", **kw)


@router.get("", response_model=Page[SchedulePublic])
def list_schedules(conn: Db, principal: Reader, page: PagingDep, clock: ClockDep,
                   site: str | None = None, route: str | None = None,
                   guard: str | None = None) -> dict[str, Any]:
    """Schedules, filtered by site, route and guard, each with its next planned run."""
    items, total = store.list_schedules(conn, site=scoped_site(principal, site), route=route,
                                        guard=guard, limit=page.limit, offset=page.offset)
    now = clock()
    return {"items": [_public(conn, i, now) for i in items], "total": total,
            "limit": page.limit, "offset": page.offset}


@router.get("/{site}/{schedule}", response_model=SchedulePublic)
def get_schedule(site: str, schedule: str, conn: Db, principal: Reader, clock: ClockDep
                 ) -> dict[str, Any]:
    """One schedule of a site, with its next planned run."""
    check_site(principal, site)
    with patrol_errors():
        return _public(conn, store.get_schedule(conn, site, schedule), clock())


@router.post("", response_model=SchedulePublic, status_code=201)
def create_schedule(body: ScheduleCreate, conn: Db, principal: Editor, clock: ClockDep
                    ) -> dict[str, Any]:
    """Create a schedule; runs since effective_from are planned (and checked) by the clock."""
    check_write_site(principal, body.site_id)
    now = clock()
    with patrol_errors():
        store.site_timezone(conn, body.site_id)
        try:
            store.get_schedule(conn, body.site_id, body.id)
        except store.NotFound:
            pass
        else:
            raise ApiError(409, f"schedule {body.id!r} already exists at site {body.site_id!r}")
        store.upsert_schedule(conn, body.site_id, _body(body, exclude={"site_id"}), now=now)
        return _public(conn, store.get_schedule(conn, body.site_id, body.id), now)


@router.patch("/{site}/{schedule}", response_model=SchedulePublic)
def update_schedule(site: str, schedule: str, body: ScheduleUpdate, conn: Db,
                    principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Change a schedule; runs not yet started are planned again, walked runs stay."""
    check_site(principal, site)
    now = clock()
    with patrol_errors():
        current = store.get_schedule(conn, site, schedule).definition
        changes = _body(body, exclude_unset=True)
        if "guard" in changes and changes["guard"]:
            changes.setdefault("post", None)
        if "post" in changes and changes["post"]:
            changes.setdefault("guard", None)
        store.upsert_schedule(conn, site, {**current, **changes}, now=now)
        return _public(conn, store.get_schedule(conn, site, schedule), now)


@router.delete("/{site}/{schedule}", status_code=204)
def delete_schedule(site: str, schedule: str, conn: Db, principal: Editor, clock: ClockDep
                    ) -> Response:
    """Delete a schedule and its runs not yet started; walked runs stay as history."""
    check_site(principal, site)
    with patrol_errors():
        store.delete_schedule(conn, site, schedule, now=clock())
    return Response(status_code=204)
