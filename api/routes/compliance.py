"""Compliance logs kept from telemetry: the fire-pump test log (消防泵周期试验).

`GET /compliance/fire-pumps?site=S&from=&to=`: per fire pump and jockey pump, every period of
a required test (weekly automatic start, monthly manual start, daily jockey check) that
overlaps the dates, with its outcome and the start it rests on, and the fire pumps' starts.
`from` and `to` are dates in the site's time zone, both included (default: the last 28 days).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ClockDep, Db, Reader, check_site, scoped_site
from api.errors import ApiError
from api.resource import Day
from rules.fire_pump_store import fire_pump_log

router = APIRouter(prefix="/compliance", tags=["compliance"])

MAX_DAYS = 366
DEFAULT_DAYS = 28


class FirePumpRun(BaseModel):
    id: int | None
    started_at: datetime
    stopped_at: datetime = Field(description="the first reading with the pump stopped again")
    duration_s: float
    pressure_reached: float | None = Field(description="MPa, the highest while running")
    flow_max: float | None
    start_pressure: float | None = Field(description="MPa, just before it started")
    stop_pressure: float | None = Field(description="MPa, just after it stopped")
    mode: Literal["auto", "manual"] | None = Field(description="how it was started; null: "
                                                   "the pump did not say")


class FirePumpPeriod(BaseModel):
    test: Literal["weekly_auto", "monthly_manual", "jockey_daily"]
    period_start: datetime
    period_end: datetime
    status: Literal["done", "failed", "missed", "pending", "unjudged"] = Field(
        description="pending: the period has not ended; unjudged: before the pump's log "
        "began, or its data not read yet")
    reason: str | None = Field(description="why failed or missed")
    details: dict[str, Any] = Field(description="jockey_daily: starts, start_pressure, "
                                    "stop_pressure, max_starts")
    work_order_id: int | None = Field(description="the work order a gap opened")
    run: FirePumpRun | None = Field(description="the start the verdict rests on")


class FirePumpLog(BaseModel):
    device_id: str
    name: str
    kind: Literal["fire", "jockey"]
    periods: list[FirePumpPeriod]
    starts: list[FirePumpRun] = Field(description="a fire pump's starts in the dates (at "
                                      "most 500); a jockey pump's are counted per day")


class FirePumpsPublic(BaseModel):
    site: str
    timezone: str
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    totals: dict[str, int] = Field(description="periods per status")
    pumps: list[FirePumpLog]


@router.get("/fire-pumps", response_model=FirePumpsPublic, response_model_by_alias=True)
def fire_pumps(conn: Db, principal: Reader, clock: ClockDep,
               site: str | None = None,
               start: Annotated[Day | None, Query(alias="from", description="first day (site's"
                                                  " time zone), included")] = None,
               to: Annotated[Day | None, Query(description="last day (site's time zone), "
                                               "included; default today")] = None
               ) -> dict[str, Any]:
    """The fire-pump test log: per pump and period, the tests done, failed and missed."""
    scope = scoped_site(principal, site)
    if scope is None:
        raise ApiError(422, "give `site`", code="invalid")
    check_site(principal, scope)
    row = conn.execute("SELECT timezone FROM sites WHERE id = %s", (scope,)).fetchone()
    if row is None:
        raise ApiError(404, f"site {scope!r} not found")
    tz = ZoneInfo(row["timezone"])
    now = clock()
    last = to or now.astimezone(tz).date()
    first = start or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise ApiError(422, "`to` must not be before `from`", code="invalid")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, f"a period is at most {MAX_DAYS} days", code="invalid")
    if first.year < 1971 or last.year > 9998:
        raise ApiError(422, "dates must lie between 1971 and 9998", code="invalid")
    begin = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    pumps = fire_pump_log(conn, scope, begin, end, now=now)
    totals: dict[str, int] = {}
    for pump in pumps:
        for p in pump["periods"]:
            totals[p["status"]] = totals.get(p["status"], 0) + 1
    return {"site": scope, "timezone": row["timezone"], "from": first, "to": last,
            "totals": totals, "pumps": pumps}
