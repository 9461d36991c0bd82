"""KPIs of a site (or of the caller's sites) over a period of local dates, with the period before.

`from` and `to` are dates in the site's time zone and both are included: a week is
`from=<Monday>&to=<Sunday>`, as the weekly report counts it (to midnight after `to`, local).
`previous` is each KPI's value over the same number of days just before `from`. Without
`site`, a token limited to one site gets that site's answer; a token for every site gets
`{"from", "to", "sites": [<one answer per site>], "total"}`, sites by id, at most 100.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ClockDep, Db, Reader, check_site, scoped_site
from api.errors import ApiError
from api.resource import Day
from reports import kpis

router = APIRouter(prefix="/kpis", tags=["kpis"])

MAX_SITES = 100
MAX_DAYS = 366


class KpiPublic(BaseModel):
    value: float | None = Field(description="the KPI; null when there is nothing to count")
    numerator: float | None
    denominator: float | None
    target: float | None = Field(description="the site's target (kpi_targets); null: none")
    previous: float | None = Field(description="the value over the same-length period before")
    p90: float | None = Field(None, description="means only: the 90th percentile")
    breakdown: dict[str, Any] = Field(default_factory=dict)


class KpisPublic(BaseModel):
    site: str
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    kpis: dict[str, KpiPublic]


class SitesKpis(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    sites: list[KpisPublic]
    total: int = Field(description="the caller's sites in all (at most 100 are answered)")


def _answer(site: str, start: date, to: date, values: dict[str, kpis.Kpi]) -> dict[str, Any]:
    return {"site": site, "from": start, "to": to,
            "kpis": {name: k.public() for name, k in values.items()}}


@router.get("", response_model=KpisPublic | SitesKpis, response_model_by_alias=True)
def get_kpis(conn: Db, principal: Reader, clock: ClockDep,
             start: Annotated[Day, Query(alias="from", description="first day (site's time "
                                         "zone), included")],
             to: Annotated[Day, Query(description="last day (site's time zone), included")],
             site: str | None = None) -> dict[str, Any]:
    """Every KPI (DESIGN.md "KPIs") over [from, to], with targets and the period before."""
    if to < start:
        raise ApiError(422, "`to` must not be before `from`", code="invalid")
    if (to - start).days >= MAX_DAYS:
        raise ApiError(422, f"a period is at most {MAX_DAYS} days", code="invalid")
    if start.year < 1971 or to.year > 9998:
        raise ApiError(422, "dates must lie between 1971 and 9998", code="invalid")
    end = to + timedelta(days=1)
    now = clock()
    scope = scoped_site(principal, site)
    if scope is not None:
        check_site(principal, scope)
        return _answer(scope, start, to, kpis.compare(conn, scope, start, end, now=now))
    ids, total = kpis.sites(conn, limit=MAX_SITES)
    many = kpis.compute_many(conn, ids, start, end, now=now, previous=True)
    return {"from": start, "to": to, "total": total,
            "sites": [_answer(s, start, to, values) for s, values in many.items()]}
