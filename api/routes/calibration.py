"""Calibration checks: each technician's gauge reading compared with the device's sensor.

`GET /api/v1/calibration-checks?site=S&device=D&from=T1&to=T2` lists them newest first
(from/to bound the scan time, `to` excluded), paged like every list; a site-scoped token sees
its site only and a guard token its own checks. Each check says what was read, what the sensor
said nearest that time (and when), the difference and tolerance applied, the outcome
(agreed, disagreed, no_sensor_value), the run of disagreements it ends, and the calibration
ticket it opened or was noted on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Db, Reader, scoped_site
from api.patrol import own_guard
from api.resource import Page, PagingDep, When
from caretaker.ids import IDENT_PATTERN
from rules import calibration_checks

router = APIRouter(prefix="/calibration-checks", tags=["calibration"])

IdParam = Annotated[str | None, Query(pattern=IDENT_PATTERN)]
KeyParam = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class CalibrationCheckPublic(BaseModel):
    """One comparison of a checklist reading with the linked sensor."""

    id: int
    site_id: str
    checkpoint_id: str
    checkpoint_name: str | None
    reading: str = Field(description="the checklist item's reading key")
    device_id: str
    metric: str
    guard_id: str
    scan_id: UUID
    scan_time: datetime
    manual_value: float = Field(description="what the technician read")
    sensor_value: float | None = Field(description="the sensor's reading nearest the scan")
    sensor_time: datetime | None
    difference: float | None = Field(description="manual_value − sensor_value")
    allowed: float | None = Field(description="the tolerance applied, in the metric's unit")
    outcome: Literal["agreed", "disagreed", "no_sensor_value"]
    agreed: bool | None = Field(description="null: no sensor value within the window")
    streak: int = Field(description="disagreements in a row ending with this check")
    work_order_id: int | None = Field(description="the calibration ticket opened or noted")
    checked_at: datetime


@router.get("", response_model=Page[CalibrationCheckPublic])
def list_checks(conn: Db, principal: Reader, page: PagingDep, site: IdParam = None,
                device: IdParam = None, checkpoint: IdParam = None, metric: KeyParam = None,
                outcome: Literal["agreed", "disagreed", "no_sensor_value"] | None = None,
                start: Annotated[When | None, Query(alias="from", description=(
                    "scan time from (included)"))] = None,
                end: Annotated[When | None, Query(alias="to", description=(
                    "scan time up to (excluded)"))] = None) -> dict[str, Any]:
    """Calibration checks, newest first (e.g. ?site=riverside&device=pump-1&outcome=disagreed)."""
    items, total = calibration_checks.list_checks(
        conn, scope=scoped_site(principal, site), guard=own_guard(principal), site=site,
        device=device, checkpoint=checkpoint, metric=metric, outcome=outcome, since=start,
        until=end, limit=page.limit, offset=page.offset)
    return page.answer(items, total)
