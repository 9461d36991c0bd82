"""Devices: the equipment of a site (pumps, lifts, chillers, meters, tanks) and its online state."""

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

router = APIRouter(prefix="/devices", tags=["registry"])

Creator = Annotated[Principal, Depends(require("supervisor"))]
# Engineers keep the equipment list current (assign an auto-registered device, retire one).
Editor = Annotated[Principal, Depends(require("supervisor", "engineer"))]
Status = Literal["active", "unassigned", "retired"]


class DeviceBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type_id: Ident | None = None
    zone_id: Ident | None = None
    status: Status = "active"
    attributes: dict[str, Any] = Field(default_factory=dict)
    # per-rule threshold overrides: {"rule-id": {"threshold": 7.1}}
    overrides: dict[str, Any] = Field(default_factory=dict)


class DeviceCreate(DeviceBase):
    site_id: Ident
    id: Ident


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    type_id: Ident | None = None
    zone_id: Ident | None = None
    status: Status | None = None
    attributes: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None


class DevicePublic(DeviceBase):
    site_id: str
    id: str
    last_seen: datetime | None
    online: bool | None
    online_changed_at: datetime | None
    # what said so: status, lwt (its Last Will), planned (an announced stop), telemetry
    online_source: str | None = None
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=Page[DevicePublic])
def list_devices(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                 zone: str | None = None, type: str | None = None,  # noqa: A002
                 status: Status | None = None, online: bool | None = None) -> dict[str, Any]:
    """Devices, filtered by site, zone, type, status and online state."""
    filters = {"site_id": scoped_site(principal, site), "zone_id": zone, "type_id": type,
               "status": status, "online": online}
    items, total = registry.list_rows(conn, registry.DEVICES, filters=filters,
                                      scope=principal.site_id, limit=page.limit,
                                      offset=page.offset)
    return page.answer(items, total)


@router.get("/{site}/{device}", response_model=DevicePublic)
def get_device(site: str, device: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One device of a site."""
    check_site(principal, site)
    row = registry.get_row(conn, registry.DEVICES, (site, device), scope=principal.site_id)
    if row is None:
        raise not_found(f"device {site}/{device}")
    return row


@router.post("", response_model=DevicePublic, status_code=201)
def create_device(body: DeviceCreate, conn: Db, principal: Creator,
                  clock: ClockDep) -> dict[str, Any]:
    """Add a device to a site."""
    check_write_site(principal, body.site_id)
    return registry.insert_row(conn, registry.DEVICES, body.model_dump(), now=clock())


@router.patch("/{site}/{device}", response_model=DevicePublic)
def update_device(site: str, device: str, body: DeviceUpdate, conn: Db, principal: Editor,
                  clock: ClockDep) -> dict[str, Any]:
    """Change a device: name, type, zone, status, attributes, threshold overrides."""
    check_site(principal, site)
    changes = changes_of(body, not_null=("name", "status", "attributes", "overrides"))
    row = registry.update_row(conn, registry.DEVICES, (site, device), changes,
                              scope=principal.site_id, now=clock())
    if row is None:
        raise not_found(f"device {site}/{device}")
    return row
