"""Device types: the kinds of equipment (water pump, elevator, ...) and the metrics they report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClockDep, Db, GlobalAdmin, Reader
from api.errors import not_found
from api.resource import Page, PagingDep, changes_of
from caretaker import registry
from caretaker.ids import Ident

router = APIRouter(prefix="/device-types", tags=["registry"])


class DeviceTypeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    # {"outlet_pressure": {"unit": "MPa"}, ...}
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DeviceTypeCreate(DeviceTypeBase):
    id: Ident


class DeviceTypeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    metrics: dict[str, dict[str, Any]] | None = None


class DeviceTypePublic(DeviceTypeBase):
    id: str


@router.get("", response_model=Page[DeviceTypePublic])
def list_device_types(conn: Db, principal: Reader, page: PagingDep) -> dict[str, Any]:
    """All device types (they are shared by every site)."""
    items, total = registry.list_rows(conn, registry.DEVICE_TYPES, filters={}, scope=None,
                                      limit=page.limit, offset=page.offset)
    return page.answer(items, total)


@router.get("/{type_id}", response_model=DeviceTypePublic)
def get_device_type(type_id: str, conn: Db, principal: Reader) -> dict[str, Any]:
    """One device type."""
    row = registry.get_row(conn, registry.DEVICE_TYPES, (type_id,))
    if row is None:
        raise not_found(f"device type {type_id!r}")
    return row


@router.post("", response_model=DeviceTypePublic, status_code=201)
def create_device_type(body: DeviceTypeCreate, conn: Db, principal: GlobalAdmin,
                       clock: ClockDep) -> dict[str, Any]:
    """Add a device type (an unscoped admin only: types are shared by every site)."""
    return registry.insert_row(conn, registry.DEVICE_TYPES, body.model_dump(), now=clock())


@router.patch("/{type_id}", response_model=DeviceTypePublic)
def update_device_type(type_id: str, body: DeviceTypeUpdate, conn: Db, principal: GlobalAdmin,
                       clock: ClockDep) -> dict[str, Any]:
    """Change a device type's name or metrics (an unscoped admin only)."""
    row = registry.update_row(conn, registry.DEVICE_TYPES, (type_id,),
                              changes_of(body, not_null=("name", "metrics")), now=clock())
    if row is None:
        raise not_found(f"device type {type_id!r}")
    return row
