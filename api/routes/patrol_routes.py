"""Patrol routes: the checkpoints of a round, in order or any order, with timing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.resource import Page, PagingDep, check_write_site
from caretaker.durations import Duration
from caretaker.errors import Conflict, Invalid
from caretaker.ids import Ident
from caretaker.site_config import ShortText
from caretaker.tokens import Principal
from rules.patrol import store
from rules.patrol.model import MAX_STEPS, Route, Step, route_from_dict

# A PATCH field's default: absent leaves the value, an explicit null is refused.
UNSET: Any = None

router = APIRouter(prefix="/routes", tags=["patrol"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
SiteFilter = Annotated[Ident | None, Query(description="only this site's routes")]


class RouteUpdate(BaseModel):
    """The fields of a route to change; the result is validated as a whole route."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText = Field(default=UNSET)
    ordered: bool = Field(default=UNSET)
    min_duration: Duration = Field(default=UNSET)
    grace: Duration = Field(default=UNSET)
    lone_worker: Duration | None = None
    steps: list[Step] = Field(default=UNSET, min_length=1, max_length=MAX_STEPS)


class RoutePublic(Route):
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[RoutePublic])
def list_routes(conn: Db, principal: Reader, page: PagingDep, site: SiteFilter = None
                ) -> dict[str, Any]:
    """Routes, optionally of one site."""
    items, total = store.list_routes(conn, site=scoped_site(principal, site),
                                     limit=page.limit, offset=page.offset)
    return page.answer([i.public() for i in items], total)


@router.get("/{site}/{route}", response_model=RoutePublic)
def get_route(site: Ident, route: Ident, conn: Db, principal: Reader) -> dict[str, Any]:
    """One route of a site."""
    check_site(principal, site)
    return store.get_route(conn, site, route).public()


@router.post("", response_model=RoutePublic, status_code=201)
def create_route(body: Route, conn: Db, principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Create a route (`site_id` required); 409 if the id is taken at that site."""
    if body.site_id is None:
        raise Invalid("site_id: required")
    check_write_site(principal, body.site_id)
    store.site_timezone(conn, body.site_id)
    try:
        store.get_route(conn, body.site_id, body.id)
    except store.NotFound:
        pass
    else:
        raise Conflict(f"route {body.id!r} already exists at site {body.site_id!r}")
    store.upsert_route(conn, body.site_id, body, now=clock())
    return store.get_route(conn, body.site_id, body.id).public()


@router.patch("/{site}/{route}", response_model=RoutePublic)
def update_route(site: Ident, route: Ident, body: RouteUpdate, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Change a route; runs not yet started are planned again with the new definition."""
    check_site(principal, site)
    current = store.get_route(conn, site, route).definition
    changes = body.model_dump(mode="json", exclude_unset=True)
    store.upsert_route(conn, site, route_from_dict({**current, **changes}), now=clock())
    return store.get_route(conn, site, route).public()


@router.delete("/{site}/{route}", status_code=204)
def delete_route(site: Ident, route: Ident, conn: Db, principal: Editor) -> Response:
    """Delete a route no schedule uses (409 otherwise); its past runs stay."""
    check_site(principal, site)
    store.delete_route(conn, site, route)
    return Response(status_code=204)
