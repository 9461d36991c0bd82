"""Checkpoints: the tagged points guards scan on patrol, and equipment inspection points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, Reader, check_site, require, scoped_site
from api.errors import not_found
from api.resource import Page, PagingDep, changes_of, check_write_site
from caretaker import registry
from caretaker.ids import Ident
from caretaker.tokens import Principal

router = APIRouter(prefix="/checkpoints", tags=["registry"])

Editor = Annotated[Principal, Depends(require("supervisor"))]
Kind = Literal["patrol", "equipment"]


class CheckpointBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    tag: str = Field(min_length=1, max_length=256)
    kind: Kind = "patrol"
    zone_id: Ident | None = None
    device_id: Ident | None = None
    # [{"item": "outlet pressure", "reading": "outlet_pressure", "min": 0.3, "max": 0.6}, ...]
    checklist: list[dict[str, Any]] = Field(default_factory=list)


class CheckpointCreate(CheckpointBase):
    site_id: Ident
    id: Ident


class CheckpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    tag: str | None = Field(default=None, min_length=1, max_length=256)
    kind: Kind | None = None
    zone_id: Ident | None = None
    device_id: Ident | None = None
    checklist: list[dict[str, Any]] | None = None


class CheckpointPublic(CheckpointBase):
    site_id: str
    id: str
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[CheckpointPublic])
def list_checkpoints(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                     zone: str | None = None, kind: Kind | None = None,
                     device: str | None = None, tag: str | None = None) -> dict[str, Any]:
    """Checkpoints, filtered by site, zone, kind, linked device and tag."""
    filters = {"site_id": scoped_site(principal, site), "zone_id": zone, "kind": kind,
               "device_id": device, "tag": tag}
    items, total = registry.list_rows(conn, registry.CHECKPOINTS, filters=filters,
                                      scope=principal.site_id, limit=page.limit,
                                      offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{checkpoint}", response_model=CheckpointPublic)
def get_checkpoint(site: str, checkpoint: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One checkpoint of a site."""
    check_site(principal, site)
    row = registry.get_row(conn, registry.CHECKPOINTS, (site, checkpoint),
                           scope=principal.site_id)
    if row is None:
        raise not_found(f"checkpoint {site}/{checkpoint}")
    return row


@router.post("", response_model=CheckpointPublic, status_code=201)
def create_checkpoint(body: CheckpointCreate, conn: Db, principal: Editor,
                      clock: ClockDep) -> dict[str, Any]:
    """Add a checkpoint to a site; its tag must be unique within the site."""
    check_write_site(principal, body.site_id)
    return registry.insert_row(conn, registry.CHECKPOINTS, body.model_dump(), now=clock())


@router.patch("/{site}/{checkpoint}", response_model=CheckpointPublic)
def update_checkpoint(site: str, checkpoint: str, body: CheckpointUpdate, conn: Db,
                      principal: Editor, clock: ClockDep) -> dict[str, Any]:
    """Change a checkpoint: name, tag, kind, zone, linked device, checklist."""
    check_site(principal, site)
    changes = changes_of(body, not_null=("name", "tag", "kind", "checklist"))
    row = registry.update_row(conn, registry.CHECKPOINTS, (site, checkpoint), changes,
                              scope=principal.site_id, now=clock())
    if row is None:
        raise not_found(f"checkpoint {site}/{checkpoint}")
    return row
