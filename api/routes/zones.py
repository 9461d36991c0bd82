"""Zones: the areas of a site (pump room, lobby, car park) that devices and checkpoints are in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import not_found
from api.resource import Page, PagingDep, changes_of, check_write_site
from caretaker import registry
from caretaker.ids import Ident
from caretaker.tokens import Principal

router = APIRouter(prefix="/zones", tags=["registry"])

Editor = Annotated[Principal, Depends(require("supervisor"))]


class ZoneBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: str | None = None


class ZoneCreate(ZoneBase):
    site_id: Ident
    id: Ident


class ZoneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    kind: str | None = None


class ZonePublic(ZoneBase):
    site_id: str
    id: str


@router.get("", response_model=Page[ZonePublic])
def list_zones(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
               kind: str | None = None) -> dict[str, Any]:
    """Zones, filtered by site and kind."""
    items, total = registry.list_rows(
        conn, registry.ZONES, filters={"site_id": scoped_site(principal, site), "kind": kind},
        scope=principal.site_id, limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{zone}", response_model=ZonePublic)
def get_zone(site: str, zone: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One zone of a site."""
    check_site(principal, site)
    row = registry.get_row(conn, registry.ZONES, (site, zone), scope=principal.site_id)
    if row is None:
        raise not_found(f"zone {site}/{zone}")
    return row


@router.post("", response_model=ZonePublic, status_code=201)
def create_zone(body: ZoneCreate, conn: Db, principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Add a zone to a site."""
    check_write_site(principal, body.site_id)
    return registry.insert_row(conn, registry.ZONES, body.model_dump(), now=clock())


@router.patch("/{site}/{zone}", response_model=ZonePublic)
def update_zone(site: str, zone: str, body: ZoneUpdate, conn: Db, principal: Editor,
                clock: ClockDep) -> dict[str, Any]:
    """Change a zone's name or kind."""
    check_site(principal, site)
    row = registry.update_row(conn, registry.ZONES, (site, zone), changes_of(body),
                              scope=principal.site_id, now=clock())
    if row is None:
        raise not_found(f"zone {site}/{zone}")
    return row
