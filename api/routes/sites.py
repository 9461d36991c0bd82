"""Sites: the properties Caretaker looks after (an estate, a complex, a tower)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, GlobalAdmin, Reader, check_site, require
from api.errors import not_found
from api.resource import Page, PagingDep, changes_of
from caretaker import registry
from caretaker.ids import Ident
from caretaker.tokens import Principal

router = APIRouter(prefix="/sites", tags=["registry"])

TimeZone = Annotated[str, AfterValidator(registry.check_timezone)]
Editor = Annotated[Principal, Depends(require("supervisor"))]


class SiteBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    timezone: TimeZone = "UTC"
    address: str | None = None


class SiteCreate(SiteBase):
    id: Ident


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    timezone: TimeZone | None = None
    address: str | None = None


class SitePublic(SiteBase):
    id: str
    auto_registered: bool
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[SitePublic])
def list_sites(conn: Db, principal: Reader, page: PagingDep) -> dict[str, Any]:
    """The sites this token may see."""
    items, total = registry.list_rows(conn, registry.SITES, filters={},
                                      scope=principal.site_id, limit=page.limit,
                                      offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}", response_model=SitePublic)
def get_site(site: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One site."""
    check_site(principal, site)
    row = registry.get_row(conn, registry.SITES, (site,), scope=principal.site_id)
    if row is None:
        raise not_found(f"site {site!r}")
    return row


@router.post("", response_model=SitePublic, status_code=201)
def create_site(body: SiteCreate, conn: Db, principal: GlobalAdmin,
                clock: ClockDep) -> dict[str, Any]:
    """Add a site (an admin token for every site only)."""
    return registry.insert_row(conn, registry.SITES, body.model_dump(), now=clock())


@router.patch("/{site}", response_model=SitePublic)
def update_site(site: str, body: SiteUpdate, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Change a site's name, time zone or address."""
    check_site(principal, site)
    changes = changes_of(body, not_null=("name", "timezone"))
    row = registry.update_row(conn, registry.SITES, (site,), changes,
                              scope=principal.site_id, now=clock())
    if row is None:
        raise not_found(f"site {site!r}")
    return row
