"""Early warning: the latest estimate of when each forecast condition crosses its threshold."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Db, Reader, scoped_site
from api.resource import Page, PagingDep
from rules import forecast_job

router = APIRouter(prefix="/forecasts", tags=["rules"])

State = Literal["idle", "warned", "alarm", "handled"]


class ForecastPublic(BaseModel):
    """One device and condition: the estimate, and what was said about it."""

    site_id: str
    device_id: str
    rule_id: str
    metric: str
    op: str
    threshold: float
    level: str
    state: State
    expected_at: datetime | None
    earliest_at: datetime | None
    latest_at: datetime | None
    confidence: float | None
    slope_per_day: float | None
    points: int | None
    work_order_id: int | None
    checked_at: datetime
    changed_at: datetime


@router.get("", response_model=Page[ForecastPublic])
def list_forecasts(conn: Db, principal: Reader, page: PagingDep, site: str | None = None,
                   device: str | None = None, rule: str | None = None,
                   state: State | None = None) -> dict[str, Any]:
    """The latest estimate of each device and condition of the site file's `forecast:`
    section, soonest expected crossing first. state: idle (no warning), warned (a live
    preventive work order, `work_order_id`, says when), alarm (the real alarm fired: quiet),
    handled (people ended the ticket while the forecast still warned). confidence is the
    probability of a crossing within the site's horizon; expected_at is null when no
    crossing is foreseen within 90 days, or with too little history (`points`)."""
    items, total = forecast_job.list_forecasts(
        conn, filters={"site": site, "device": device, "rule": rule, "state": state},
        scope=scoped_site(principal, site), limit=page.limit, offset=page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}
