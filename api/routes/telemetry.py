"""Telemetry read-back: raw readings, time_bucket aggregates, latest value per device+metric.

Every parameter is validated before a query runs: ids by the id pattern, metric names without
control characters, limit 1..1000, offsets within PostgreSQL's bigint.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from api.deps import ClockDep, Db, Reader, scoped_site
from api.errors import ApiError
from api.resource import When
from caretaker.ids import IDENT_PATTERN
from ingest import readback

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

DEFAULT_SPAN = timedelta(days=1)
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1  # PostgreSQL's OFFSET is a bigint
METRIC_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"  # as the ingest accepts them

SiteParam = Annotated[str | None, Query(pattern=IDENT_PATTERN)]
DeviceParam = Annotated[str | None, Query(pattern=IDENT_PATTERN)]
MetricParam = Annotated[str | None, Query(pattern=METRIC_PATTERN)]


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

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"time": "2026-11-23T07:50:00Z", "device": "pump-1", "metric": "pressure",
                   "value": 0.42, "text": None}],
        "total": 1440, "limit": 1000, "offset": 0, "bucket": None}]})

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
    site: SiteParam = None, device: DeviceParam = None, metric: MetricParam = None,
    start: Annotated[When | None, Query(alias="from")] = None,
    end: Annotated[When | None, Query(alias="to")] = None,
    bucket: Annotated[str | None, Query(max_length=32,
                                        description="30s, 5m, 1h, 1d: aggregate per bucket")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Readings of a site in [from, to) (default: the last day), raw or per time bucket."""
    site_id = _site(principal, site)
    end = end or clock()
    try:
        start = start or end - DEFAULT_SPAN
    except OverflowError:
        raise ApiError(422, "to is too early", code="invalid") from None
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
        items, total = readback.telemetry_buckets(conn, site=site_id, device=device,
                                                  metric=metric, start=start, end=end,
                                                  bucket=readback.parse_bucket(bucket),
                                                  limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset, "bucket": bucket}


@router.get("/latest", response_model=LatestPublic)
def get_latest(conn: Db, principal: Reader, clock: ClockDep, site: SiteParam = None,
               device: DeviceParam = None,
               within: Annotated[str, Query(max_length=32,
                                            description="look back this far: 1h, 1d, 7d")
                                 ] = "7d") -> dict[str, Any]:
    """The newest value of each device and metric of a site (seen within `within`)."""
    site_id = _site(principal, site)
    span = readback.parse_bucket(within, what="within")
    items = readback.latest_values(conn, site=site_id, device=device, since=clock() - span)
    return {"items": items, "total": len(items)}
