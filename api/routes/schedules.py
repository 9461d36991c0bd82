"""Schedules: when a route is walked, by which guard or post, in the site's time zone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.resource import Page, PagingDep, check_write_site
from caretaker.durations import Duration
from caretaker.errors import Conflict, Invalid
from caretaker.ids import Ident
from caretaker.tokens import Principal
from rules.patrol import store
from rules.patrol.model import (
    ClockTime,
    Monthly,
    Post,
    Schedule,
    Weekday,
    Window,
    schedule_from_dict,
)
from rules.patrol.schedule import next_occurrence

# A PATCH field's default: absent leaves the value, an explicit null is refused.
UNSET: Any = None

router = APIRouter(prefix="/schedules", tags=["patrol"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Filter = Annotated[Ident | None, Query()]


class ScheduleUpdate(BaseModel):
    """The fields of a schedule to change; the result is validated as a whole schedule."""

    model_config = ConfigDict(extra="forbid")

    route: Ident = Field(default=UNSET)
    kind: Literal["daily", "every", "weekly", "monthly"] = Field(default=UNSET)
    guard: Ident | None = None
    post: Post | None = None
    at: list[ClockTime] = Field(default=UNSET, max_length=96)
    every: Duration | None = None
    window: Window | None = None
    weekdays: list[Weekday] = Field(default=UNSET, max_length=7)
    monthly: Monthly | None = None
    start_tolerance: Duration | None = None
    effective_from: date = Field(default=UNSET)
    effective_until: date | None = None
    enabled: bool = Field(default=UNSET)


class SchedulePublic(Schedule):
    next_run: datetime | None = None
    created_at: datetime
    updated_at: datetime


def _public(conn: Db, stored: store.Stored, now: datetime) -> dict[str, Any]:
    out = stored.public()
    sched = store.load_schedule(stored.definition)
    out["next_run"] = next_occurrence(sched, store.site_timezone(conn, stored.site_id), now)
    return out


@router.get("", response_model=Page[SchedulePublic])
def list_schedules(conn: Db, principal: Reader, page: PagingDep, clock: ClockDep,
                   site: Filter = None, route: Filter = None,
                   guard: Filter = None) -> dict[str, Any]:
    """Schedules, filtered by site, route and guard, each with its next planned run."""
    items, total = store.list_schedules(conn, site=scoped_site(principal, site), route=route,
                                        guard=guard, limit=page.limit, offset=page.offset)
    now = clock()
    return page.answer([_public(conn, i, now) for i in items], total)


@router.get("/{site}/{schedule}", response_model=SchedulePublic)
def get_schedule(site: Ident, schedule: Ident, conn: Db, principal: Reader, clock: ClockDep
                 ) -> dict[str, Any]:
    """One schedule of a site, with its next planned run."""
    check_site(principal, site)
    return _public(conn, store.get_schedule(conn, site, schedule), clock())


@router.post("", response_model=SchedulePublic, status_code=201)
def create_schedule(body: Schedule, conn: Db, principal: Editor, clock: ClockDep
                    ) -> dict[str, Any]:
    """Create a schedule (`site_id` required); the clock plans its runs since effective_from."""
    if body.site_id is None:
        raise Invalid("site_id: required")
    check_write_site(principal, body.site_id)
    now = clock()
    store.site_timezone(conn, body.site_id)
    try:
        store.get_schedule(conn, body.site_id, body.id)
    except store.NotFound:
        pass
    else:
        raise Conflict(f"schedule {body.id!r} already exists at site {body.site_id!r}")
    store.upsert_schedule(conn, body.site_id, body, now=now)
    return _public(conn, store.get_schedule(conn, body.site_id, body.id), now)


@router.patch("/{site}/{schedule}", response_model=SchedulePublic)
def update_schedule(site: Ident, schedule: Ident, body: ScheduleUpdate, conn: Db,
                    principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Change a schedule; runs not yet started are planned again, walked runs stay."""
    check_site(principal, site)
    now = clock()
    current = store.get_schedule(conn, site, schedule).definition
    changes = body.model_dump(mode="json", exclude_unset=True)
    if changes.get("guard"):
        changes.setdefault("post", None)
    if changes.get("post"):
        changes.setdefault("guard", None)
    store.upsert_schedule(conn, site, schedule_from_dict({**current, **changes}), now=now)
    return _public(conn, store.get_schedule(conn, site, schedule), now)


@router.delete("/{site}/{schedule}", status_code=204)
def delete_schedule(site: Ident, schedule: Ident, conn: Db, principal: Editor, clock: ClockDep
                    ) -> Response:
    """Delete a schedule and its runs not yet started; walked runs stay as history."""
    check_site(principal, site)
    store.delete_schedule(conn, site, schedule, now=clock())
    return Response(status_code=204)
