"""Telemetry read-back: raw readings, time_bucket aggregates, latest value per device+metric."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import ClockDep, Db, Reader, scoped_site
from api.errors import ApiError
from ingest import readback

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

DEFAULT_SPAN = timedelta(days=1)


class TelemetryPointPublic(BaseModel):
    time: datetime
    device: str
    metric: str
    value: float | None
    text: str | None


class TelemetryBucketPublic(BaseModel):
    time: datetime
    device: str
    metric: str
    min: float | None
    max: float | None
    avg: float | None
    count: int
    last: float | None
    last_text: str | None


class TelemetryPage(BaseModel):
    """Raw points (no bucket) or aggregates (with ?bucket=), paged."""

    items: list[TelemetryPointPublic] | list[TelemetryBucketPublic]
    total: int
    limit: int
    offset: int
    bucket: str | None = None


class LatestPublic(BaseModel):
    items: list[TelemetryPointPublic]
    total: int


def _site(principal: Any, site: str | None) -> str:
    scoped = scoped_site(principal, site)
    if scoped is None:
        raise ApiError(422, "give ?site=", code="invalid")
    return scoped


@router.get("", response_model=TelemetryPage)
def get_telemetry(
    conn: Db, principal: Reader, clock: ClockDep,
    site: str | None = None, device: str | None = None, metric: str | None = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    bucket: Annotated[str | None, Query(description="30s, 5m, 1h, 1d: aggregate per bucket")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Readings of a site in [from, to) (default: the last day), raw or per time bucket."""
    site_id = _site(principal, site)
    end = end or clock()
    start = start or end - DEFAULT_SPAN
    if start.tzinfo is None or end.tzinfo is None:
        raise ApiError(422, "from and to need a time zone (e.g. 2026-11-23T08:00:00Z)",
                       code="invalid")
    if start >= end:
        raise ApiError(422, "from must be before to", code="invalid")
    if bucket is None:
        items, total = readback.telemetry_points(conn, site=site_id, device=device,
                                                 metric=metric, start=start, end=end,
                                                 limit=limit, offset=offset)
    else:
        try:
            width = readback.parse_bucket(bucket)
        except ValueError as exc:
            raise ApiError(422, str(exc), code="invalid") from exc
        items, total = readback.telemetry_buckets(conn, site=site_id, device=device,
                                                  metric=metric, start=start, end=end,
                                                  bucket=width, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset, "bucket": bucket}


@router.get("/latest", response_model=LatestPublic)
def get_latest(conn: Db, principal: Reader, clock: ClockDep, site: str | None = None,
               device: str | None = None,
               within: Annotated[str, Query(description="look back this far: 1h, 1d, 7d")
                                 ] = "7d") -> dict[str, Any]:
    """The newest value of each device and metric of a site (seen within `within`)."""
    site_id = _site(principal, site)
    try:
        span = readback.parse_bucket(within)
    except ValueError as exc:
        raise ApiError(422, str(exc), code="invalid") from exc
    items = readback.latest_values(conn, site=site_id, device=device, since=clock() - span)
    return {"items": items, "total": len(items)}
