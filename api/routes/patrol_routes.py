"""Patrol routes: the checkpoints of a round, in order or any order, with timing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import ApiError
from api.patrol import patrol_errors
from api.resource import Ident, Page, PagingDep, check_write_site
from caretaker.tokens import Principal
from rules.patrol import store

router = APIRouter(prefix="/routes", tags=["patrol"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Duration = Annotated[str | int, Field(description="20m, 2h, 1h30m, 90s or seconds")]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: Ident
    offset: Duration = "0m"
    tolerance: Duration = "5m"


class RouteBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    ordered: bool = True
    min_duration: Duration = "0m"
    grace: Duration = "30m"
    lone_worker: Duration | None = None
    steps: list[StepIn] = Field(min_length=1)


class RouteCreate(RouteBase):
    site_id: Ident
    id: Ident


class RouteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    ordered: bool | None = None
    min_duration: Duration | None = None
    grace: Duration | None = None
    lone_worker: Duration | None = None
    steps: list[StepIn] | None = Field(default=None, min_length=1)


class StepPublic(BaseModel):
    checkpoint: str
    offset: str
    tolerance: str


class RoutePublic(BaseModel):
    site_id: str
    id: str
    name: str
    ordered: bool
    min_duration: str
    grace: str
    lone_worker: str | None
    steps: list[StepPublic]
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[RoutePublic])
def list_routes(conn: Db, principal: Reader, page: PagingDep, site: str | None = None
                ) -> dict[str, Any]:
    """Routes, optionally of one site."""
    items, total = store.list_routes(conn, site=scoped_site(principal, site),
                                     limit=page.limit, offset=page.offset)
    return {"items": [i.public() for i in items], "total": total, "limit": page.limit,
            "offset": page.offset}


@router.get("/{site}/{route}", response_model=RoutePublic)
def get_route(site: str, route: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One route of a site."""
    check_site(principal, site)
    with patrol_errors():
        return store.get_route(conn, site, route).public()


@router.post("", response_model=RoutePublic, status_code=201)
def create_route(body: RouteCreate, conn: Db, principal: Editor, clock: ClockDep
                 ) -> dict[str, Any]:
    """Create a route; 409 if the id is taken at that site."""
    check_write_site(principal, body.site_id)
    with patrol_errors():
        store.site_timezone(conn, body.site_id)
        try:
            store.get_route(conn, body.site_id, body.id)
        except store.NotFound:
            pass
        else:
            raise ApiError(409, f"route {body.id!r} already exists at site {body.site_id!r}")
        store.upsert_route(conn, body.site_id, body.model_dump(exclude={"site_id"}),
                           now=clock())
        return store.get_route(conn, body.site_id, body.id).public()


@router.patch("/{site}/{route}", response_model=RoutePublic)
def update_route(site: str, route: str, body: RouteUpdate, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Change a route; runs not yet started are planned again with the new definition."""
    check_site(principal, site)
    with patrol_errors():
        current = store.get_route(conn, site, route).definition
        changes = body.model_dump(exclude_unset=True)
        if "name" in changes and changes["name"] is None:
            raise ApiError(422, "name may not be null", code="invalid")
        store.upsert_route(conn, site, {**current, **changes}, now=clock())
        return store.get_route(conn, site, route).public()


@router.delete("/{site}/{route}", status_code=204)
def delete_route(site: str, route: str, conn: Db, principal: Editor) -> Response:
    """Delete a route no schedule uses (409 otherwise); its past runs stay."""
    check_site(principal, site)
    with patrol_errors():
        store.delete_route(conn, site, route)
    return Response(status_code=204)
