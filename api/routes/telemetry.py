"""Telemetry read-back: raw readings, aggregates per bucket read from the resolution the range
calls for (raw, 1m or 1h rollups), the latest value per device+metric, paged by cursor.

Every parameter is validated before a query runs: ids by the id pattern, metric names without
control characters, limit 1..1000, offsets within PostgreSQL's bigint.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from api.deps import ClockDep, Db, Reader, scoped_site
from api.errors import ApiError
from api.resource import When
from caretaker import resolution
from caretaker.ids import IDENT_PATTERN
from ingest import readback

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

DEFAULT_SPAN = timedelta(days=1)
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1  # PostgreSQL's OFFSET is a bigint
METRIC_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"  # as the ingest accepts them
MAX_LATEST = 10000  # a site's device-metric pairs: thousands at most
Resolution = Literal["auto", "raw", "1m", "1h"]

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
    """Raw points, or aggregates per bucket (asked with ?bucket=, or picked for long ranges).

    `resolution` says what answered: `raw` points, or the `1m` / `1h` rollups (exact: the
    range's ragged edges and hours not rolled up yet are read raw). `total` is not counted
    (telemetry is a hypertable of millions of rows): follow `next_cursor` until it is null.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"time": "2026-11-23T07:50:00Z", "device": "pump-1", "metric": "pressure",
                   "value": 0.42, "text": None}],
        "total": None, "limit": 1000, "offset": 0, "bucket": None, "resolution": "raw",
        "next_cursor": "WyIyMDI2LTExLTIzVDA3OjUwOjAwKzAwOjAwIiwgInB1bXAtMSIsICJwcmVzc3VyZSJd"}]})

    items: list[TelemetryPointPublic] | list[TelemetryBucketPublic]
    total: int | None = None
    limit: int
    offset: int
    bucket: str | None = None
    resolution: str
    next_cursor: str | None = None


class LatestPublic(BaseModel):
    items: list[TelemetryPointPublic]
    total: int


def _site(principal: Any, site: str | None) -> str:
    scoped = scoped_site(principal, site)
    if scoped is None:
        raise ApiError(422, "give ?site=", code="invalid")
    return scoped


def _tier(asked: str, span: timedelta, width: timedelta | None) -> resolution.Tier:
    """The stored resolution to read: the one asked, else picked from the bucket or range."""
    if asked == "auto":
        return resolution.for_span(span) if width is None else resolution.for_bucket(width)
    tier = resolution.named(asked)
    if width is not None and tier.rolled and (width < tier.width or width % tier.width):
        raise ApiError(422, f"bucket must be a multiple of {tier.name} to read {tier.name}"
                       " rollups", code="invalid")
    return tier


@router.get("", response_model=TelemetryPage)
def get_telemetry(
    conn: Db, principal: Reader, clock: ClockDep,
    site: SiteParam = None, device: DeviceParam = None, metric: MetricParam = None,
    start: Annotated[When | None, Query(alias="from")] = None,
    end: Annotated[When | None, Query(alias="to")] = None,
    bucket: Annotated[str | None, Query(max_length=32,
                                        description="30s, 5m, 1h, 1d: aggregate per bucket")
                      ] = None,
    resolution_: Annotated[Resolution, Query(
        alias="resolution", description="auto (default): raw up to 6 h, 1m rollups up to "
        "7 d, 1h beyond (with ?bucket=: the coarsest that divides it); or raw, 1m, 1h")
    ] = "auto",
    cursor: Annotated[str | None, Query(max_length=512,
                                        description="next_cursor of the previous page")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Readings of a site in [from, to) (default: the last day): raw points, or aggregates
    per bucket read from the rollups the range calls for; paged by `cursor` (no total)."""
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
    width = readback.parse_bucket(bucket) if bucket is not None else None
    tier = _tier(resolution_, end - start, width)
    after = readback.Cursor.decode(cursor) if cursor is not None else None
    if width is None and not tier.rolled:
        items, next_cursor = readback.telemetry_points(
            conn, site=site_id, device=device, metric=metric, start=start, end=end,
            limit=limit, cursor=after, offset=offset)
    else:
        if width is None:
            width, bucket = tier.width, tier.name
        items, next_cursor = readback.telemetry_buckets(
            conn, site=site_id, device=device, metric=metric, start=start, end=end,
            bucket=width, tier=tier, limit=limit, cursor=after, offset=offset)
    return {"items": items, "total": None, "limit": limit, "offset": offset,
            "bucket": bucket, "resolution": tier.name, "next_cursor": next_cursor}


@router.get("/latest", response_model=LatestPublic)
def get_latest(conn: Db, principal: Reader, clock: ClockDep, site: SiteParam = None,
               device: DeviceParam = None,
               within: Annotated[str, Query(max_length=32,
                                            description="look back this far: 1h, 1d, 7d")
                                 ] = "7d",
               limit: Annotated[int, Query(ge=1, le=MAX_LATEST)] = MAX_LATEST,
               ) -> dict[str, Any]:
    """The newest value of each device and metric of a site (seen within `within`), from the
    latest-readings table the ingest keeps current; `total` is exact (at most `limit`)."""
    site_id = _site(principal, site)
    span = readback.parse_bucket(within, what="within")
    items = readback.latest_values(conn, site=site_id, device=device, since=clock() - span,
                                   limit=limit)
    return {"items": items, "total": len(items)}
