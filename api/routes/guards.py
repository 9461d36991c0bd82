"""Guards: the patrol guards and technicians of a site who scan checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import not_found
from api.resource import Page, PagingDep, changes_of, check_write_site
from caretaker import registry
from caretaker.ids import Ident
from caretaker.tokens import Principal

router = APIRouter(prefix="/guards", tags=["registry"])

Editor = Annotated[Principal, Depends(require("supervisor"))]


class GuardBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    post: str | None = None
    active: StrictBool = True


class GuardCreate(GuardBase):
    site_id: Ident
    id: Ident


class GuardUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    post: str | None = None
    active: StrictBool | None = None


class GuardPublic(GuardBase):
    site_id: str
    id: str


@router.get("", response_model=Page[GuardPublic])
def list_guards(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                post: str | None = None, active: bool | None = None) -> dict[str, Any]:
    """Guards, filtered by site, post and whether they are active."""
    filters = {"site_id": scoped_site(principal, site), "post": post, "active": active}
    items, total = registry.list_rows(conn, registry.GUARDS, filters=filters,
                                      scope=principal.site_id, limit=page.limit,
                                      offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{guard}", response_model=GuardPublic)
def get_guard(site: str, guard: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One guard of a site."""
    check_site(principal, site)
    row = registry.get_row(conn, registry.GUARDS, (site, guard), scope=principal.site_id)
    if row is None:
        raise not_found(f"guard {site}/{guard}")
    return row


@router.post("", response_model=GuardPublic, status_code=201)
def create_guard(body: GuardCreate, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Add a guard to a site."""
    check_write_site(principal, body.site_id)
    return registry.insert_row(conn, registry.GUARDS, body.model_dump(), now=clock())


@router.patch("/{site}/{guard}", response_model=GuardPublic)
def update_guard(site: str, guard: str, body: GuardUpdate, conn: Db, principal: Editor,
                 clock: ClockDep) -> dict[str, Any]:
    """Change a guard's name or post, or mark the guard inactive."""
    check_site(principal, site)
    row = registry.update_row(conn, registry.GUARDS, (site, guard),
                              changes_of(body, not_null=("name", "active")),
                              scope=principal.site_id, now=clock())
    if row is None:
        raise not_found(f"guard {site}/{guard}")
    return row
